"""Code written for Lambda, run unmodified on Squall.

Each handler lives in a module of its own, registered by its `module.function` string, so
every module here is exactly what would be deployed to Lambda: none imports Squall. Each
is imported in its function's instances once Lambda's environment is set (Powertools
reads `POWERTOOLS_*` and `AWS_LAMBDA_INITIALIZATION_TYPE` when it is imported). This file
is the only Squall-specific part: it plays the role of the SAM template or serverless.yml.
"""

from squall import App

app = App("lambda_compat", environment={"POWERTOOLS_SERVICE_NAME": "lambda-compat"})

# (a) A Powertools APIGatewayHttpResolver app, mounted under /api
app.http("ANY", "/api/{proxy+}", handler="resolver_api.lambda_handler", name="resolver_api")

# (b) A Powertools BatchProcessor consumer reporting partial batch failures
app.on_queue("payments", handler="payments.lambda_handler", name="payments",
             batch_size=10, max_receive_count=2, visibility_timeout=1)

# (c) Powertools Logger and Metrics (EMF lines in the function's log)
app.http("POST", "/checkout", handler="checkout.lambda_handler", name="checkout",
         environment={"POWERTOOLS_METRICS_NAMESPACE": "LambdaCompat"})

# (d) A FastAPI app behind Mangum, mounted under /fastapi
app.http("ANY", "/fastapi/{proxy+}", handler="fastapi_api.handler", name="fastapi_api")

# (e) A handler in the style of AWS's "Lambda function handler in Python" sample
app.function(handler="receipt.lambda_handler", name="receipt", environment={"RECEIPT_BUCKET": "receipts"})
