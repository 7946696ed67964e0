module github.com/airgap-byok/airgap-byok/shared

go 1.26.0

require (
	github.com/airgap-byok/airgap-byok/transfer-format v0.0.0-00010101000000-000000000000
	github.com/rogpeppe/go-internal v1.16.0
	github.com/urfave/cli/v2 v2.27.7
	go.etcd.io/bbolt v1.4.3
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require (
	github.com/cpuguy83/go-md2man/v2 v2.0.7 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
	github.com/xrash/smetrics v0.0.0-20240521201337-686a1a2994c1 // indirect
)

require (
	github.com/klauspost/compress v1.20.4 // indirect
	golang.org/x/tools v0.26.0 // indirect
)

replace github.com/airgap-byok/airgap-byok/transfer-format => ../transfer-format
