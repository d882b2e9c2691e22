"""The login server's HTML: the account picker, the error page, the form_post hand-off and the
signed-out page.

Plain HTML forms, no inline script or style: the pages work under the strict
Content-Security-Policy they are sent with (``CSP`` below). The one script, which submits the
``form_post`` hand-off without a click as Entra's page does, is a file served by the simulator;
without it the page shows a Continue button.
"""

import html

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'none'"
)
TITLE = "Sign in — Microsoft (simulated)"
STYLE = """body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0}
main{background:#fff;max-width:36rem;margin:3rem auto;padding:2rem 2.5rem;
box-shadow:0 2px 6px #0003}
h1{font-size:1.5rem;font-weight:600;margin:0 0 .5rem}
.brand{color:#5e5e5e;font-weight:600;margin-bottom:1rem}
ul{list-style:none;padding:0}li{margin:.4rem 0}
button{font:inherit;cursor:pointer}
.account{width:100%;text-align:left;padding:.6rem .8rem;border:1px solid #ccc;background:#fff}
.account:hover,.account:focus{background:#eef4fb;border-color:#0067b8}
.account.hinted{border-color:#0067b8}
.upn,.meta{display:block;color:#5e5e5e;font-size:.85rem}
.cancel{background:none;border:0;color:#0067b8;padding:0;margin-top:1rem}
.error{color:#a80000}.details{color:#5e5e5e;font-size:.8rem;white-space:pre-wrap}
.note{color:#5e5e5e;font-size:.85rem}
"""
AUTOSUBMIT_JS = "document.forms[0].submit();\n"


def _e(value):
    return html.escape(str(value), quote=True)


def _page(body, autosubmit=False):
    script = '<script src="/_sim/entra/form_post.js" defer></script>' if autosubmit else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(TITLE)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f'<link rel="stylesheet" href="/_sim/entra/style.css">{script}</head>'
        f'<body><main><div class="brand">Microsoft (simulated)</div>{body}</main></body></html>\n'
    )


def _hidden(fields):
    return "".join(
        f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">'
        for name, value in fields.items()
    )


def sign_in(action, params, users, session, hint, fresh_login, app_name):
    """The account picker: one POST form per user, carrying the authorize request along."""
    items = []
    for user in users:
        signed_in = session is not None and session["oid"] == user.oid
        roles = ", ".join(user.roles) or "no app role"
        mfa = "MFA" if user.mfa else "password only"
        state = ""
        if signed_in and not fresh_login:
            state = " · signed in"
        hinted = " hinted" if hint and hint.lower() == user.upn else ""
        items.append(
            f'<li><form method="post" action="{_e(action)}">{_hidden(params)}'
            f'<input type="hidden" name="sim_user" value="{_e(user.oid)}">'
            f'<button type="submit" class="account{hinted}" data-upn="{_e(user.upn)}">'
            f"<strong>{_e(user.display_name)}</strong>"
            f'<span class="upn">{_e(user.upn)}</span>'
            f'<span class="meta">{_e(roles)} · {mfa}{state}</span></button></form></li>'
        )
    cancel = (
        f'<form method="post" action="{_e(action)}">{_hidden(params)}'
        '<input type="hidden" name="sim_cancel" value="1">'
        '<button type="submit" class="cancel">Cancel</button></form>'
    )
    why = "Sign in again to continue." if fresh_login else "Pick an account"
    body = (
        f"<h1>{why}</h1>"
        f'<p class="note">to continue to <strong>{_e(app_name)}</strong>. No password is '
        "asked: this is the simulator's stand-in for Microsoft Entra ID.</p>"
        f"<ul>{''.join(items)}</ul>{cancel}"
    )
    return _page(body)


def error(err, detail=""):
    body = (
        "<h1>Sign in</h1>"
        '<p class="error">Sorry, but we’re having trouble signing you in.</p>'
        f'<p id="aadsts" data-code="{err.code}">{_e(err.message)}</p>'
        f"{f'<p>{_e(detail)}</p>' if detail else ''}"
        f'<p class="details">Request Id: {_e(err.trace_id)}\nCorrelation Id: '
        f"{_e(err.correlation_id)}\nTimestamp: {_e(err.timestamp)}</p>"
    )
    return _page(body)


def form_post(redirect_uri, fields):
    """``response_mode=form_post``: a form that posts the result to the redirect URI."""
    body = (
        f'<form method="post" action="{_e(redirect_uri)}">{_hidden(fields)}'
        "<p>Signing you in…</p><noscript><p>Script is off: press Continue.</p></noscript>"
        '<button type="submit">Continue</button></form>'
    )
    return _page(body, autosubmit=True)


def signed_out(note=""):
    body = (
        "<h1>You signed out of your account</h1>"
        "<p>It’s a good idea to close all browser windows.</p>"
        f"{f'<p class=note>{_e(note)}</p>' if note else ''}"
    )
    return _page(body)
