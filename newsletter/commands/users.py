"""`newsletter users …`: operator accounts for the console and the admin API."""

from __future__ import annotations

import sys

import click

from newsletter.accounts import actions
from newsletter.accounts.roles import ORDER
from newsletter.commands.common import InputError, emit_json, handled, perform

ROLES = click.Choice([r.value for r in ORDER])


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise InputError("no terminal to ask for the password: pass it with --password-stdin")
    if not password:
        raise InputError("the password is empty")
    return password


@click.group("users")
def users_group() -> None:
    """Operator accounts: create, list, disable, API tokens."""


@users_group.command("create")
@click.argument("email")
@click.option("--role", type=ROLES, required=True, help="viewer, editor, sender, admin or owner.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@handled
def users_create(email: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create an account (asks for the password on a terminal)."""
    password = _read_password(password_stdin)
    record = perform(actions.create_user, email, role, password)
    if as_json:
        emit_json(record)
    else:
        click.echo(f"created {record['email']} ({record['role']})")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@handled
def users_list(as_json: bool) -> None:
    rows = perform(actions.list_users)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        state = "disabled" if row["disabled"] else "active"
        last = row["last_login_at"] or "never"
        click.echo(f"{row['email']}  {row['role']}  {state}  last login {last}")


@users_group.command("disable")
@click.argument("email")
@handled
def users_disable(email: str) -> None:
    """Disable an account: its sessions end and its API tokens stop working at once."""
    record = perform(actions.disable_user, email)
    click.echo(f"disabled {record['email']}")


@users_group.command("enable")
@click.argument("email")
@handled
def users_enable(email: str) -> None:
    record = perform(actions.enable_user, email)
    click.echo(f"enabled {record['email']}")


@users_group.command("role")
@click.argument("email")
@click.argument("role", type=ROLES)
@handled
def users_role(email: str, role: str) -> None:
    record = perform(actions.set_role, email, role)
    click.echo(f"{record['email']} is now {record['role']}")


@users_group.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@handled
def users_password(email: str, password_stdin: bool) -> None:
    """Set a new password; the user's console sessions end."""
    perform(actions.set_password, email, _read_password(password_stdin))
    click.echo(f"password changed for {email}")


@users_group.command("token")
@click.argument("email")
@handled
def users_token(email: str) -> None:
    """Print a new API token for the user, once (only its hash is kept)."""
    record = perform(actions.new_token, email)
    click.echo(record["token"])


@users_group.command("revoke-token")
@click.argument("token_id", type=int)
@handled
def users_revoke_token(token_id: int) -> None:
    perform(actions.revoke_token, token_id)
    click.echo(f"revoked token {token_id}")
