package sim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

const maxTop = 250

// paginate returns the page of items (sorted ascending by key) that the
// request's $top and $skiptoken select, and the absolute nextLink of the
// following page ("" on the last). The skiptoken is base64 of
// {"nextMarker":"<key of the last item served>"}, as the Flow API does.
func paginate[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string, defaultTop int) ([]T, string, bool) {
	q := r.URL.Query()
	top := defaultTop
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "InvalidQueryParameterValue", "The value '"+v+"' of query parameter '$top' is not valid.")
			return nil, "", false
		}
		top = min(n, maxTop)
	}
	start := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		var marker struct {
			NextMarker string `json:"nextMarker"`
		}
		raw, err := base64.StdEncoding.DecodeString(tok)
		if err != nil || json.Unmarshal(raw, &marker) != nil || marker.NextMarker == "" {
			writeError(w, http.StatusBadRequest, "InvalidSkipToken", "The skip token is not valid.")
			return nil, "", false
		}
		for start < len(items) && key(items[start]) <= marker.NextMarker {
			start++
		}
	}
	end := min(start+top, len(items))
	page := items[start:end]
	if end == len(items) {
		return page, "", true
	}
	marker, _ := json.Marshal(map[string]string{"nextMarker": key(items[end-1])})
	q.Del("$skiptoken")
	info := infoOf(r)
	next := info.base + info.origPath + "?" + q.Encode() + "&%24skiptoken=" + url.QueryEscape(base64.StdEncoding.EncodeToString(marker))
	return page, next, true
}

// collection writes {"value": [...], "<linkField>": next}.
// writePage answers a list request with the page of items paginate selects,
// each written as toJSON makes it, and the next page's link in linkField.
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string, defaultTop int, linkField string, toJSON func(T) any) {
	page, next, ok := paginate(w, r, items, key, defaultTop)
	if !ok {
		return
	}
	out := make([]any, 0, len(page))
	for _, it := range page {
		out = append(out, toJSON(it))
	}
	collection(w, out, linkField, next)
}

func collection(w http.ResponseWriter, items []any, linkField, next string) {
	body := map[string]any{"value": items}
	if next != "" {
		body[linkField] = next
	}
	writeJSON(w, http.StatusOK, body)
}
