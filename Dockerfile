# edgescore-server, CPU torch by default. Same install step as the Makefile: pip install ".[server]".
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The CPU-only torch (and torchvision, which onnx2torch imports) wheels first, from PyTorch's CPU
# index: the default index would pull a CUDA build of several GB. Override TORCH_INDEX to use a
# local mirror.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==2.13.0" "torchvision==0.28.0" --index-url "$TORCH_INDEX"

COPY pyproject.toml README.md ./
COPY edgescore ./edgescore
COPY server ./server
COPY device_agent ./device_agent
COPY client ./client
COPY evaluation ./evaluation
COPY integrations ./integrations
RUN pip install ".[server]"

RUN useradd --create-home edgescore
USER edgescore
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["edgescore-server", "--address", "0.0.0.0:50051", "--metrics-port", "9464"]
