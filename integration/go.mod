module github.com/airgap-byok/airgap-byok/integration

go 1.26.0
