module github.com/airgap-byok/airgap-byok/integration

go 1.26.0

require (
	github.com/airgap-byok/airgap-byok/shared v0.0.0
	github.com/airgap-byok/airgap-byok/transfer-format v0.0.0
)

replace github.com/airgap-byok/airgap-byok/shared => ../shared

replace github.com/airgap-byok/airgap-byok/transfer-format => ../transfer-format
