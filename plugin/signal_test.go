package plugin

import (
	"os"
	"syscall"
)

func syscallSIGTERM() os.Signal { return syscall.SIGTERM }
