package tools

import (
	"encoding/json"
	"sync"
)

// answerMemo remembers the encoded answers of pure tools (Tool.Pure), keyed by the
// tool, the caller's plan and key scope and the arguments as sent. A skills answer is
// kilobytes of JSON built from the catalog on every call; from memory it is one copy.
// Bounded: at most maxAnswers entries, arguments of at most maxAnswerArgs bytes, and
// when full it starts over, so no caller can grow it.
type answerMemo struct {
	mu sync.RWMutex
	m  map[string][]byte
}

const (
	maxAnswers    = 512
	maxAnswerArgs = 256
)

// answerKey is the memo key of a call, and whether its answer may be remembered.
func answerKey(t *Tool, p *Principal, rawArgs json.RawMessage) (string, bool) {
	if !t.Pure || len(rawArgs) > maxAnswerArgs {
		return "", false
	}
	tier, scope := "", ""
	if p != nil {
		tier, scope = string(p.Tier), p.Scope
	}
	return t.Name + "\x00" + tier + "\x00" + scope + "\x00" + string(rawArgs), true
}

func (a *answerMemo) get(key string) ([]byte, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	b, ok := a.m[key]
	return b, ok
}

// put keeps a copy of body: the caller's buffer becomes a response.
func (a *answerMemo) put(key string, body []byte) {
	kept := append([]byte(nil), body...)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil || len(a.m) >= maxAnswers {
		a.m = make(map[string][]byte)
	}
	a.m[key] = kept
}
