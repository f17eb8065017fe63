# Clover on POCL: OpenCL on the CPU, so it runs on any machine, no GPU needed.
#
#   docker build -f docker/pocl.Dockerfile -t clover-pocl .
#   docker run --rm clover-pocl                              # the tests
#   docker run --rm clover-pocl bash scripts/main.sh         # devices + conformance
ARG SWIFT_VERSION=6.2
FROM swift:${SWIFT_VERSION}-bookworm

WORKDIR /clover
COPY . .

# The same setup as on a bare machine; then build once at image build time so
# that running the container only runs.
RUN bash scripts/setup.sh \
    && rm -rf /var/lib/apt/lists/* \
    && swift build --build-tests \
    && swift build -c release --product clover

CMD ["bash", "scripts/test.sh"]
