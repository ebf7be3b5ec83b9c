"""docker-compose.yml cannot run here (no Docker engine): check that it is wired right."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("migrate", "web", "worker", "beat", "bounce-server")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_every_part_of_the_design():
    services = compose()["services"]
    for name in ("postgres", "redis", "mailcatcher", *APP_SERVICES):
        assert name in services, name


def test_app_services_share_one_image_and_one_set_of_settings():
    services = compose()["services"]
    envs = [services[name]["environment"] for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs)
    assert {services[name]["image"] for name in APP_SERVICES} == {"newsletter:latest"}
    env = envs[0]
    assert "@postgres:5432/" in env["NEWSLETTER_DATABASE_URL"]
    assert env["NEWSLETTER_BROKER_URL"].startswith("redis://redis:6379")
    assert env["NEWSLETTER_SMTP_URL"] == "smtp://mailcatcher:1025"
    assert env["NEWSLETTER_ENV"] == "production"


def test_every_setting_named_is_one_the_service_reads():
    known = {
        "NEWSLETTER_" + (f.alias or name).removeprefix("NEWSLETTER_").rstrip("_").upper()
        for name, f in Settings.model_fields.items()
    }
    for key in compose()["services"]["web"]["environment"]:
        assert key in known, key


def test_secrets_are_not_in_the_file():
    env = compose()["services"]["web"]["environment"]
    assert env["NEWSLETTER_SECRET_KEY"].startswith("${")
    assert env["NEWSLETTER_ADMIN_TOKEN"].startswith("${")


def test_every_command_is_a_real_cli_command():
    services = compose()["services"]
    runner = CliRunner()
    for name in APP_SERVICES:
        command = services[name]["command"]
        assert command[0] == "newsletter"
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        result = runner.invoke(main, [*words[:1], "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_the_image_installs_the_package_with_its_templates():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY templates templates" in dockerfile and "pip install --no-cache-dir ." in dockerfile
