// Command placeholder is the test node's pause image and the build pod's
// placeholder step, as drone-runner-kube starts every step of a pipeline in
// a placeholder container and swaps the step's image in when it runs. It
// ignores its arguments (a script step's shell command is set on the
// container from the start: the image is installed as /bin/sh too) and
// waits for SIGTERM or SIGINT, on which it exits 0 at once.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
