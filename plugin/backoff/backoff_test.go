package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRetry: the pauses grow from First to Max; a Permanent failure ends
// at once, unwrapped; Tries and Until bound the tries; After sets one pause;
// ctx ending during a pause returns its cause.
func TestRetry(t *testing.T) {
	boom := errors.New("boom")
	var pauses []time.Duration
	p := Policy{First: time.Millisecond, Max: 4 * time.Millisecond, Tries: 5, Notify: func(_ error, _ int, d time.Duration) { pauses = append(pauses, d) }}
	tries := 0
	err := Retry(context.Background(), p, func(context.Context) error { tries++; return boom })
	if !errors.Is(err, boom) || tries != 5 || len(pauses) != 4 || pauses[0] != time.Millisecond || pauses[3] != 4*time.Millisecond {
		t.Errorf("tries %d, pauses %v, err %v", tries, pauses, err)
	}
	tries = 0
	err = Retry(context.Background(), p, func(context.Context) error { tries++; return Permanent(boom) })
	if err != boom || tries != 1 {
		t.Errorf("permanent: tries %d, err %v", tries, err)
	}
	tries = 0
	err = Retry(context.Background(), Policy{First: time.Hour, Until: time.Now().Add(time.Second)}, func(context.Context) error { tries++; return boom })
	if err != boom || tries != 1 {
		t.Errorf("a pause past Until: tries %d, err %v", tries, err)
	}
	tries = 0
	err = Retry(context.Background(), Policy{First: 30 * time.Millisecond, Budget: 50 * time.Millisecond}, func(context.Context) error { tries++; return boom })
	if err != boom || tries != 2 {
		t.Errorf("a budget from the first failure: tries %d, err %v", tries, err)
	}
	pauses, tries = nil, 0
	err = Retry(context.Background(), Policy{First: time.Hour, Notify: p.Notify}, func(context.Context) error {
		if tries++; tries < 3 {
			return After(boom, time.Millisecond)
		}
		return nil
	})
	if err != nil || tries != 3 || pauses[0] != time.Millisecond {
		t.Errorf("after: tries %d, pauses %v, err %v", tries, pauses, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel(boom) }()
	if err := Retry(ctx, Policy{First: time.Hour}, func(context.Context) error { return errors.New("not yet") }); err != boom {
		t.Errorf("ctx ended: %v", err)
	}
}
