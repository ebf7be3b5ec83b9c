"""A digest passes SpamAssassin's local rules with a score of 1.0 or less."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.config import Settings
from newsletter.mail.dkim import load_key
from newsletter.mail.fastpath import DigestTemplate, Recipient
from tests.send_support import HTML, TEXT, dkim_keys
from tests.services import ON_CI


def test_spamassassin_scores_a_digest_at_most_one(tmp_path: Path) -> None:
    exe = shutil.which("spamassassin")
    if exe is None:
        if ON_CI:
            pytest.fail("spamassassin is not installed; .ci/run installs it")
        pytest.skip("spamassassin is not installed (apt-get install spamassassin)")
    rsa_path, _ = dkim_keys(tmp_path)
    settings = Settings(
        NEWSLETTER_FROM="The Newsroom <news@example.com>",
        secret_key="k" * 32,
        base_url="https://news.example.com",
        data_dir=tmp_path,
    )
    template = DigestTemplate(
        settings=settings,
        digest_id=1,
        list_slug="news",
        list_name="The Newsroom Daily",
        subject="The Newsroom Daily: 12 stories from the front line",
        text=TEXT,
        html=HTML,
        dkim_keys=[load_key(rsa_path, "example.com", "s1")],
    )
    raw = template.render(Recipient(5, "reader@example.org", "Reader Five", 3))
    out = subprocess.run(
        [exe, "-L", "-t"], input=raw, capture_output=True, timeout=120, check=False
    ).stdout.decode("utf-8", "replace")
    found = re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)", out)
    assert found, out[:2000]
    assert float(found.group(1)) <= 1.0, out.split("Content analysis details:")[-1][:3000]
