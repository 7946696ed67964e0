module github.com/airgap-byok/airgap-byok/shared

go 1.26.0

require golang.org/x/term v0.48.0

require (
	github.com/airgap-byok/airgap-byok/transfer-format v0.0.0
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/airgap-byok/airgap-byok/transfer-format => ../transfer-format
