//go:build cgo

package hsm

// TestOnlyBeforeDestroy lets the external tests observe the session objects Wrap holds just
// before it destroys them.
var TestOnlyBeforeDestroy = &testOnlyBeforeDestroy
