"""What each role may do. Roles are ordered: each can do what the one before it can.

    viewer  reads every page
    editor  + stories, digests, test sends
    sender  + send, pause, resume, cancel, retry, approve
    admin   + lists, subscribers (import, erase, lift suppressions), users
    owner   + owners and admins

Routes, buttons and actions all ask `can(role, capability)`: one table decides.
"""

from __future__ import annotations

import enum

from newsletter.models import UserRole

ORDER = (UserRole.viewer, UserRole.editor, UserRole.sender, UserRole.admin, UserRole.owner)


class Capability(enum.StrEnum):
    read = "read"
    stories = "stories"
    digests = "digests"
    test_send = "test_send"
    send = "send"
    lists = "lists"
    subscribers = "subscribers"
    users = "users"
    owners = "owners"


# The least role that has each capability.
LEAST: dict[Capability, UserRole] = {
    Capability.read: UserRole.viewer,
    Capability.stories: UserRole.editor,
    Capability.digests: UserRole.editor,
    Capability.test_send: UserRole.editor,
    Capability.send: UserRole.sender,
    Capability.lists: UserRole.admin,
    Capability.subscribers: UserRole.admin,
    Capability.users: UserRole.admin,
    Capability.owners: UserRole.owner,
}


def rank(role: str) -> int:
    try:
        return ORDER.index(UserRole(role))
    except ValueError:
        return -1


def can(role: str, capability: Capability) -> bool:
    return rank(role) >= rank(LEAST[capability])


def parse_role(value: str) -> UserRole:
    from newsletter.errors import InvalidInput

    try:
        return UserRole(value.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in ORDER)
        raise InvalidInput("role", f"unknown role {value!r}; use one of {names}") from None
