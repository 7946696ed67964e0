//go:build !linux

package media

import "errors"

var errSyncUnsupported = errors.New("folder sync unsupported")
