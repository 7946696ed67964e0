//go:build !linux

package media

import "errors"

const noFollow = 0

var errSyncUnsupported = errors.New("folder sync unsupported")
