# Clover on an NVIDIA GPU through NVIDIA's OpenCL driver.
#
# The driver itself is not in the image: the NVIDIA Container Toolkit mounts
# the host's libnvidia-opencl.so.1 into the container when it is run with
# --gpus and the "compute" capability. The ICD loader only finds it through a
# vendors file, which the toolkit does not create, so the image registers it.
#
#   docker build -f docker/nvidia.Dockerfile -t clover-nvidia .
#   docker run --rm --gpus all clover-nvidia
ARG SWIFT_VERSION=6.2
FROM swift:${SWIFT_VERSION}-bookworm

ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN mkdir -p /etc/OpenCL/vendors \
    && echo "libnvidia-opencl.so.1" > /etc/OpenCL/vendors/nvidia.icd

WORKDIR /clover
COPY . .

RUN bash scripts/setup.sh \
    && rm -rf /var/lib/apt/lists/* \
    && swift build -c release --product clover

CMD ["bash", "scripts/main.sh", "--device", "nvidia"]
