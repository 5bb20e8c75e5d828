"""The account, region and ARNs that appear in AWS-shaped events."""

REGION = "us-east-1"
ACCOUNT = "000000000000"


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"
