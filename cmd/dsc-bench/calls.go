package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drone-sauce-connect/drone-sauce-connect/internal/testenv"
)

// engineCalls counts the engine API requests of one start and one stop of
// the plugin binary on the host, through a counting proxy in front of the
// engine: the plugin alone talks to the engine through it.
func (b *bencher) engineCalls(ctx context.Context, binary string) (start, stop map[string]int, err error) {
	p, err := testenv.StartEngineProxy()
	if err != nil {
		return nil, nil, err
	}
	defer p.Close()
	via := append(slices.Clone(unconfirmed), "DOCKER_HOST=unix://"+p.Socket)
	defer func(own string) { b.binary = own }(b.binary)
	b.binary = binary
	r, err := b.startRunOn(ctx, b.eng, via, 0, false)
	start = p.Calls()
	if err != nil {
		return nil, nil, err
	}
	if _, err := b.stopRunOn(ctx, b.eng, via, r.tunnel); err != nil {
		return nil, nil, err
	}
	return start, p.Calls(), nil
}

// printCalls shows a count of requests, the verbs most used first.
func printCalls(what string, calls map[string]int) {
	total := 0
	for _, n := range calls {
		total += n
	}
	verbs := slices.SortedFunc(maps.Keys(calls), func(a, b string) int {
		if calls[a] != calls[b] {
			return calls[b] - calls[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(verbs))
	for _, v := range verbs {
		parts = append(parts, fmt.Sprintf("%d %s", calls[v], v))
	}
	fmt.Printf("engine API calls per %s: %d (%s)\n", what, total, strings.Join(parts, ", "))
}

// printEngineCalls counts and prints the calls of binary's start and stop.
func (b *bencher) printEngineCalls(ctx context.Context, binary string) error {
	start, stop, err := b.engineCalls(ctx, binary)
	if err != nil {
		return err
	}
	printCalls("start (on the host, tunnel new)", start)
	printCalls("stop", stop)
	fmt.Println()
	return nil
}
