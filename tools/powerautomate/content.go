package powerautomate

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
)

// Content is the body behind an inputsLink / outputsLink.
type Content struct {
	Body        []byte
	ContentType string
	Truncated   bool  // Body stops at the cap
	Size        int64 // full size when known (Content-Length or a complete read), else -1
}

// FetchContent reads a run content link. The link must be on ContentHosts;
// it is SAS-signed, so no Authorization header is ever sent, and redirects
// off the allow-list are refused. At most maxBytes are read (<= 0 means
// Config.MaxContentBytes); a longer body comes back with Truncated set.
func (c *Client) FetchContent(ctx context.Context, link string, maxBytes int64) (*Content, error) {
	u, err := url.Parse(link)
	if err != nil || !c.contentAllowed(u) {
		return nil, fmt.Errorf("%w: content link", ErrLinkNotAllowed)
	}
	if maxBytes <= 0 {
		maxBytes = c.cfg.MaxContentBytes
	}
	resp, err := c.send(ctx, request{op: "FetchContent", method: "GET", url: link, readLimit: maxBytes})
	if err != nil {
		return nil, err
	}
	out := &Content{Body: resp.body, ContentType: resp.header.Get("Content-Type"), Truncated: resp.truncated, Size: -1}
	if n, err := strconv.ParseInt(resp.header.Get("Content-Length"), 10, 64); err == nil {
		out.Size = n
	} else if !resp.truncated {
		out.Size = int64(len(resp.body))
	}
	return out, nil
}
