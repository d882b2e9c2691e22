"""The JSON API that ticketing systems use: ``tokens`` (bearer tokens, who is calling, refusals),
``schemas`` (typed bodies and answers, from which the OpenAPI document is generated), ``answers``
(what a token sees, shaped as the schemas say) and ``views`` (the operations, on Django Ninja).
"""

from requests_app.api.tokens import issue_token as issue_token
