package powerautomate

import (
	"context"
	"fmt"
	"net/url"
	"strings"
)

// page is an ARM/OData collection. Flow uses nextLink, some Power Platform
// endpoints @odata.nextLink.
type page[T any] struct {
	Value         []T    `json:"value"`
	NextLink      string `json:"nextLink"`
	ODataNextLink string `json:"@odata.nextLink"`
}

func (p *page[T]) next() string {
	if p.NextLink != "" {
		return p.NextLink
	}
	return p.ODataNextLink
}

// armResource is the ARM envelope every object comes in.
type armResource[P any] struct {
	Name       string `json:"name"`
	ID         string `json:"id"`
	Type       string `json:"type"`
	Location   string `json:"location"`
	Properties P      `json:"properties"`
}

// getPage fetches one page of a collection: first, or the continuation nextLink
// (checked by pageURL) when one is given.
func getPage[T any](ctx context.Context, c *Client, op, first, nextLink string) (*page[T], error) {
	u, err := c.pageURL(first, nextLink)
	if err != nil {
		return nil, err
	}
	return callJSON[page[T]](ctx, c, op, "GET", u, nil)
}

// getAll follows a collection's nextLinks (at most maxListPages pages) and
// returns every item, each converted by conv.
func getAll[T, U any](ctx context.Context, c *Client, op, first string, conv func(T) U) ([]U, error) {
	var out []U
	link := ""
	for range maxListPages {
		p, err := getPage[T](ctx, c, op, first, link)
		if err != nil {
			return nil, err
		}
		for _, r := range p.Value {
			out = append(out, conv(r))
		}
		if link = p.next(); link == "" {
			break
		}
	}
	return out, nil
}

// pageURL returns first, or nextLink when one is given. A nextLink is
// followed verbatim (it carries api-version and the skiptoken) but only if it
// points at the same base and the same collection path as first: a cursor
// handed back by an agent must not steer the user's token elsewhere.
func (c *Client) pageURL(first, nextLink string) (string, error) {
	if nextLink == "" {
		return first, nil
	}
	f, err := url.Parse(first)
	if err != nil {
		return "", err
	}
	n, err := url.Parse(nextLink)
	if err != nil {
		return "", fmt.Errorf("%w: malformed nextLink", ErrLinkNotAllowed)
	}
	fb, _ := c.baseFor(f)
	nb, ok := c.baseFor(n)
	if !ok || nb != fb || normalHost(n) != normalHost(f) || !strings.EqualFold(n.Path, f.Path) {
		return "", fmt.Errorf("%w: nextLink is not a continuation of this list", ErrLinkNotAllowed)
	}
	return nextLink, nil
}
