"""The account, region, ARNs and request ids that appear in AWS-shaped events, and the
Lambda limits more than one layer enforces."""

import random

REGION = "us-east-1"
ACCOUNT = "000000000000"
#: Lambda's synchronous response limit: the figure its `Function.ResponseSizeTooLarge` names
MAX_RESPONSE_BYTES = 6_291_556

_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # the version nibble and RFC 4122 variant bits
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def request_id() -> str:
    """A random version-4 UUID, the form of Lambda's and API Gateway's request ids.

    Drawn from the process's PRNG instead of uuid4's os.urandom: ids must be unique, not
    secret, and at two per HTTP request the system call showed up in profiles.
    """
    h = "%032x" % (random.getrandbits(128) & _CLEAR | _VERSION_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
