"""client-info's Python SDK: a thin, typed client over the generated stubs (`clientinfo.v1`).

```python
from client_info import Client

with Client("http://127.0.0.1:50051", token=token) as client:
    panel = client.get_client_info("call-1")
```

`Client` holds the channel, the token (fixed, or a function asked per call), TLS, deadlines
and the retry rules; `ClientError` is the one exception, with the code, the `Reason`, the
metadata and the invalid fields. The generated stubs stay reachable as `client.interactions`,
`client.client_info`, `client.contact_search`, `client.contact_binding` and `client.contacts`,
and the messages as `clientinfo.v1.*_pb2`.
"""

from .client import (
    DEFAULT_TIMEOUT,
    Client,
    TokenSource,
    attribute_key,
    contact_id_key,
    email_key,
    new_request_id,
)
from .errors import ERROR_DOMAIN, ClientError, FieldViolation, PreconditionViolation, Reason
from .retry import RetryPolicy
from .watch import HEARTBEAT_HEADER, SessionWatch, WatchOptions

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "ERROR_DOMAIN",
    "HEARTBEAT_HEADER",
    "Client",
    "ClientError",
    "FieldViolation",
    "PreconditionViolation",
    "Reason",
    "RetryPolicy",
    "SessionWatch",
    "TokenSource",
    "WatchOptions",
    "attribute_key",
    "contact_id_key",
    "email_key",
    "new_request_id",
]
