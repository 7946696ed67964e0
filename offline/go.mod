module github.com/airgap-byok/airgap-byok/offline

go 1.26.0

require (
	github.com/ThalesGroup/crypto11 v1.6.2
	github.com/airgap-byok/airgap-byok/shared v0.0.0
	github.com/airgap-byok/airgap-byok/transfer-format v0.0.0
	github.com/miekg/pkcs11 v1.1.2
	github.com/pkg/errors v0.9.1
	golang.org/x/sys v0.50.0
)

require (
	github.com/thales-e-security/pool v0.0.2 // indirect
	golang.org/x/term v0.48.0 // indirect
)

replace github.com/airgap-byok/airgap-byok/shared => ../shared

replace github.com/airgap-byok/airgap-byok/transfer-format => ../transfer-format
