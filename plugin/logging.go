package plugin

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/sirupsen/logrus"
)

// LogFormatter returns the formatter for log_format: json, or plain lines
// fit for CI logs (no timestamps, the level only when it is not info, and
// the fields appended as key=value).
func LogFormatter(format LogFormat) logrus.Formatter {
	if format == "json" {
		return &logrus.JSONFormatter{}
	}
	return plainFormatter{}
}

type plainFormatter struct{}

func (plainFormatter) Format(e *logrus.Entry) ([]byte, error) {
	var b bytes.Buffer
	if e.Level != logrus.InfoLevel {
		fmt.Fprintf(&b, "%s: ", e.Level)
	}
	b.WriteString(e.Message)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Data[k])
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}
