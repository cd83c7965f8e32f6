"""The SQS client a poller or a redrive uses, built from the queue's configuration (boto is imported on first use)."""

from __future__ import annotations

from typing import Any

from flowhook.sources.sqs.config import SqsConfig


def sqs_client(config: SqsConfig) -> Any:
    """A botocore SQS client, authenticated by the named AwsCredentials block or else by the environment."""
    if config.credentials_block is None:
        import boto3

        return boto3.client("sqs", endpoint_url=config.endpoint_url, region_name=config.region)
    from prefect_aws import AwsCredentials

    load: Any = AwsCredentials.load
    block = load(config.credentials_block, _sync=True)  # `_sync`: the sync path even inside an event loop
    params: dict[str, Any] = block.aws_client_parameters.get_params_override()
    if config.endpoint_url is not None:
        params["endpoint_url"] = config.endpoint_url
    # The block's region applies unless the config names one itself (its default does not count).
    explicit = "region" in config.model_fields_set
    params["region_name"] = config.region if explicit or not block.region_name else block.region_name
    return block.get_boto3_session().client("sqs", **params)
