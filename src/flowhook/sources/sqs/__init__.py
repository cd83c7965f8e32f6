"""The SQS source, with the semantics of AWS Lambda's SQS event-source mapping.

`config` (SqsConfig), `client` (sqs_client), `messages` (message → event items), `poller` (SqsPoller), and
`redrive` (DLQ → queue). Import the module you need: only `poller` and `client` need boto.
"""
