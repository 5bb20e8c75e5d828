"""Pure builders of the events AWS Lambda delivers, one module per AWS service."""
