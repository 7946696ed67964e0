module github.com/airgap-byok/airgap-byok/transfer-format

go 1.26.0

require github.com/klauspost/compress v1.20.4
