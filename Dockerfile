FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY warning_service ./warning_service
COPY channels ./channels
COPY templates ./templates
RUN pip install --no-cache-dir .
ENV TEMPLATES_DIR=/app/templates
EXPOSE 8000
CMD ["sh", "-c", "warning-service db upgrade && warning-service serve --host 0.0.0.0 --no-worker"]
