# edgescore device agent: onnxruntime + LiteRT, no torch. Same install step as a board:
# pip install ".[agent]". Build for a 64-bit board from any machine with buildx (README):
#   docker buildx build --platform linux/arm64 -f deploy/agent.Dockerfile -t edgescore-agent --load .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY edgescore ./edgescore
COPY server ./server
COPY device_agent ./device_agent
COPY client ./client
COPY evaluation ./evaluation
COPY integrations ./integrations
# The server, evaluation and integration sources only make the one distribution build; the
# [agent] extra pulls no torch.
RUN pip install ".[agent]" && rm -rf /src

RUN useradd --system --create-home --home-dir /home/edgescore edgescore
USER edgescore
WORKDIR /home/edgescore
# The agent writes nothing but may only ever write here.
ENV EDGESCORE_AGENT_WORK_DIR=/home/edgescore/work
STOPSIGNAL SIGTERM
ENTRYPOINT ["edgescore-agent"]
