// Package plugin is what drone-sauce-connect's backends share: the settings
// and their validation into a Config, the pipeline's identity, secrets and
// masking, the readiness wait, SC's log classifier, the step outputs, and
// the contract a backend fulfils (Backend, Session, Tunnel, Perform). The
// backends live in plugin/docker and plugin/kubernetes; plugin/backend
// picks one.
package plugin
