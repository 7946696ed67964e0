package upload

import "time"

// OnAdmit makes l report the time of each admission as the limiter saw it (a worker that
// reads the clock after Wait returns may read it after another worker's sleep moved it).
func OnAdmit(l *Limiter, f func(time.Time)) { l.admitted = f }
