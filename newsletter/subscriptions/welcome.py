"""The welcome mail a list may send once a reader confirms (MailingList.welcome).

From the list's own template folder's `welcome/` (subject.txt, body.txt, body.html) when
it has one, else templates/email/welcome/; in the reader's language; signed and with a
return path of its own ("w" + subscription id) like the confirmation, with the list's
unsubscribe headers and the preference centre's link. Sent once per confirmation:
confirm() hands out SendWelcome only on the click that changed the subscription.
"""

from __future__ import annotations

import os
from functools import lru_cache

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.mail.message import address
from newsletter.mail.render import render_email
from newsletter.mail.system import AUTO, Outgoing, system_mail
from newsletter.models import Subscription, SubscriptionStatus
from newsletter.subscriptions.tokens import make_preferences_token, make_unsubscribe_token
from newsletter.templating import templates_dir

KIND = "welcome"


@lru_cache(maxsize=32)
def list_env(folder: str) -> SandboxedEnvironment:
    """A list folder's `welcome/` before the built-in one, in a sandbox: the folder is
    an operator's, and its templates must not reach the process's internals."""
    return SandboxedEnvironment(
        loader=ChoiceLoader(
            [FileSystemLoader(folder), FileSystemLoader(str(templates_dir() / "email"))]
        ),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def welcome_mail(session: Session, settings: Settings, subscription_id: int) -> Outgoing | None:
    """The welcome for a confirmed subscription of a list with it on, as it leaves
    (signed, with its own return path), else None."""
    sub = session.get(Subscription, subscription_id)
    if sub is None or sub.status != SubscriptionStatus.confirmed or not sub.mailing_list.welcome:
        return None
    mlist = sub.mailing_list
    reader = sub.subscriber
    unsubscribe_url = (
        f"{settings.base_url}/unsubscribe/{make_unsubscribe_token(settings.secret, sub.id)}"
    )
    context = {
        "name": reader.name,
        "email": reader.email,
        "list_name": mlist.name,
        "list_description": mlist.description,
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": (
            f"{settings.base_url}/preferences/{make_preferences_token(settings.secret, sub.id)}"
        ),
        "postal_address": settings.postal_address,
    }
    own = mlist.template_dir and os.path.isdir(os.path.join(mlist.template_dir, KIND))
    env = list_env(mlist.template_dir) if own and mlist.template_dir else None
    rendered = render_email(KIND, context, language=reader.language, env=env)
    return system_mail(
        settings,
        "w",
        subscription_id,
        to=address(reader.email, reader.name),
        rendered=rendered,
        headers={
            **AUTO,
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
