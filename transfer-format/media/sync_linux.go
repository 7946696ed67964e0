package media

import "syscall"

// errSyncUnsupported is what fsync of a folder returns on file systems that cannot do it
// (some FUSE and network mounts); the rename is still atomic there.
var errSyncUnsupported error = syscall.EINVAL
