FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY newsletter newsletter
COPY workers workers
COPY templates templates
RUN pip install --no-cache-dir . && useradd --create-home newsletter
USER newsletter
WORKDIR /home/newsletter
EXPOSE 8000 25
CMD ["newsletter", "web", "--host", "0.0.0.0", "--port", "8000"]
