"""Sign-in and account events in words: sign-ins, lockouts, second factors, roles, tokens."""

from requests_app.reporting.timeline.words import readable

ACTIONS = {
    "login": "Signed in",
    "logout": "Signed out",
    "login_failed": "Sign-in failed",
    "login_throttled": "Sign-in locked out (old name)",
    "login_locked_out": "Sign-in locked out",
    "session_expired": "Signed out when idle",
    "reauthenticated": "Signed in again",
    "sso_refused": "Microsoft sign-in refused",
    "user_created": "Account created",
    "roles_changed": "Roles changed",
    "second_factor_enrolled": "Second factor set up",
    "recovery_codes_renewed": "Recovery codes renewed",
    "password_reset_completed": "Password reset",
    "password_reset_requested": "Password reset asked for",
    "password_changed": "Password changed",
    "anonymous_attempts": "Repeated anonymous attempts (counted)",
    "user_activated": "Account activated",
    "user_deactivated": "Account deactivated",
    "user_privileges_changed": "Staff or superuser flag changed",
    "permissions_changed": "Permissions changed",
    "second_factor_removed": "Second factor removed",
    "api_token_created": "API token created",
    "api_token_revoked": "API token revoked",
}

SIGN_IN_METHODS = {"password": "password", "entra": "Microsoft Entra ID", "sso": "Entra ID"}


def _where(d):
    return f" from {d['ip']}" if d.get("ip") else ""


def _login(e, d):
    how = SIGN_IN_METHODS.get(d.get("method"), "")
    factor = d.get("second_factor")
    with_factor = f" and {factor.upper()}" if factor and factor not in ("none", "") else ""
    return f"Signed in{f' with {how}{with_factor}' if how else ''}{_where(d)}"


def _logout(e, d):
    return f"Signed out{_where(d)}"


def _login_failed(e, d):
    return f"Sign-in failed for “{e.actor_name}”{_where(d)}"


def _locked_out(e, d):
    minutes = f" for {d['minutes']} min" if d.get("minutes") else ""
    return f"Sign-in locked out for “{e.actor_name}” after too many failures{minutes}{_where(d)}"


def _anonymous_attempts(e, d):
    from requests_app.reporting.timeline import (
        ACTIONS as ALL,  # every action's label, the others' too
    )

    what = ALL.get(d.get("of"), readable(d.get("of"))).lower()
    n = d.get("repeats", 0)
    return f"{n} more “{what}” attempt{'s' if n != 1 else ''} by “{e.actor_name}”{_where(d)}"


def _session_expired(e, d):
    idle = d.get("idle_seconds")
    return f"Signed out after {round(idle / 60)} min idle" if idle else "Signed out when idle"


def _reauthenticated(e, d):
    factor = d.get("second_factor")
    return f"Signed in again{f' with {factor.upper()}' if factor else ''}"


def _sso_refused(e, d):
    return f"Microsoft sign-in refused ({readable(d.get('reason')).lower()})"


def _user_created(e, d):
    via = " at the first Entra ID sign-in" if d.get("via") == "entra" else ""
    return f"Account {d.get('user') or e.actor_name} created{via}"


def _roles_changed(e, d):
    parts = [f"added {', '.join(d['added'])}"] if d.get("added") else []
    parts += [f"removed {', '.join(d['removed'])}"] if d.get("removed") else []
    via = " from Entra ID" if d.get("via") == "entra" else ""
    who = d.get("user") or e.actor_name
    return f"Roles of {who} changed{via} by {e.actor_name}: {'; '.join(parts) or 'none'}"


def _activation(e, d):
    done = "activated" if e.action == "user_activated" else "deactivated"
    return f"Account {d.get('user')} {done} by {e.actor_name}"


def _privileges(e, d):
    flags = ", ".join(
        f"{name.removeprefix('is_')} {'on' if new else 'off'}"
        for name, (_, new) in sorted((k, v) for k, v in d.items() if k.startswith("is_"))
    )
    return f"Account {d.get('user')}: {flags} (by {e.actor_name})"


def _permissions(e, d):
    added, removed = ", ".join(d.get("added") or []), ", ".join(d.get("removed") or [])
    change = f"added {added}" if added else f"removed {removed}"
    return f"Permissions of {d.get('user')} changed by {e.actor_name}: {change}"


def _factor_enrolled(e, d):
    who = d.get("user") or e.actor_name
    return f"Second factor ({(d.get('kind') or '?').upper()}) set up for {who}"


def _factor_removed(e, d):
    return f"Second factor of {d.get('user')} removed ({d.get('kind')}) by {e.actor_name}"


def _password_reset_requested(e, d):
    return f"Password reset asked for “{e.actor_name}”"


def _token_created(e, d):
    name = f" ({d['name']})" if d.get("name") else ""
    return f"API token created for {d.get('user', '?')}{name}"


def _token_revoked(e, d):
    return f"API token {d.get('prefix', '?')}… revoked"


DESCRIBERS = {
    "login": _login,
    "logout": _logout,
    "login_failed": _login_failed,
    "login_throttled": _locked_out,
    "login_locked_out": _locked_out,
    "anonymous_attempts": _anonymous_attempts,
    "session_expired": _session_expired,
    "reauthenticated": _reauthenticated,
    "sso_refused": _sso_refused,
    "user_created": _user_created,
    "roles_changed": _roles_changed,
    "user_activated": _activation,
    "user_deactivated": _activation,
    "user_privileges_changed": _privileges,
    "permissions_changed": _permissions,
    "second_factor_enrolled": _factor_enrolled,
    "second_factor_removed": _factor_removed,
    "password_reset_requested": _password_reset_requested,
    "api_token_created": _token_created,
    "api_token_revoked": _token_revoked,
}
