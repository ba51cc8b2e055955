FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY events events
COPY engine engine
COPY projections projections
COPY consumers consumers
COPY countersign countersign
COPY examples examples
COPY schemas schemas
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["countersign"]
