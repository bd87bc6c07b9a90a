package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/sacred-go/sacred/pkg/observer"
)

// The -m / --mongo_db kind: Sacred's MongoObserver.
func init() {
	observer.Register(observer.Kind{
		Option: "mongo_db",
		Short:  "m",
		Arg:    "SPEC",
		Title:  "MongoDB",
		Usage:  "record to MongoDB: DB, HOST:PORT:DB or mongodb://... (Sacred's MongoObserver)",
		Remote: true,
		Parse:  func(value string) (any, error) { return ParseConfig(value) },
		Redact: Redact,
		New: func(ctx context.Context, cfg any, s observer.Settings) (observer.Observer, error) {
			return New(ctx, cfg.(*Config), s)
		},
		Open: func(ctx context.Context, cfg any, s observer.Settings) (observer.Reader, error) {
			return Open(ctx, cfg.(*Config), s)
		},
	})
}

// DefaultPriority is Sacred's priority of the MongoObserver.
const DefaultPriority = 30

// DefaultDB is the database used when the -m value names none, as in Sacred.
const DefaultDB = "sacred"

// Config is a parsed -m value.
type Config struct {
	// URI is the connection string handed to the driver. It may hold a
	// password: never print it, use Display.
	URI string
	// Display is the -m value with secrets masked, for names and messages.
	Display string
	// DB is the database the runs go to.
	DB string
	// Runs and Metrics are the collection names.
	Runs, Metrics string
	// Prefix is the collection prefix ("" for none).
	Prefix string
	// Overwrite is the id of an existing run to record over (Sacred's
	// DB.COLLECTION:RUNID form), or 0.
	Overwrite int64
	// Priority orders observers; Sacred's default is 30.
	Priority int
	// HostOnly is true when the value was read as Sacred's HOST:PORT form,
	// so that connection errors can hint at the DB.COLLECTION:RUNID reading
	// Sacred did not choose.
	HostOnly bool

	// secrets are the substrings scrubbed from driver errors.
	secrets []string
	// monitor, when set, sees every command sent (tests).
	monitor *event.CommandMonitor
}

// Names of the query options of ours, accepted after a '?' in every form
// and stripped before the URI reaches the driver.
const (
	optPrefix    = "collection_prefix"
	optPriority  = "priority"
	optOverwrite = "overwrite"
)

// Sacred's grammar (sacred/observers/mongo.py, get_pattern), rewritten for
// RE2: a HOST:PORT form, or [HOST:PORT:]DB[.COLLECTION[:RUNID]][!PRIORITY].
// The host-only alternative is tried first, as in Python's alternation, so
// "mydb.mycoll:5" is a host and a port there too.
const (
	reName = `[_A-Za-z][0-9A-Za-z#%&'()+\-;=@\[\]^_{}]{0,63}`
	reHost = `[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?)*`
)

// The patterns are compiled on first use: compiling them costs about a
// millisecond, which every `sacred` start would pay even without -m.
var (
	hostOnlyRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(` + reHost + `):(\d{1,5})$`) })
	fullRE     = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(?:(` + reHost + `):(\d{1,5}):)?(` + reName + `)(?:\.(` + reName + `)(?::(\d{1,12}))?)?(?:!(-?\d+)?)?$`)
	})
	nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + reName + `$`) })
)

const grammarHelp = `use DB, HOST:PORT, HOST:PORT:DB, DB.COLLECTION, DB.COLLECTION:RUNID, any of them with !PRIORITY, or a mongodb:// or mongodb+srv:// URI`

// ParseConfig parses the value of -m / --mongo_db. It accepts every form
// Sacred accepts, resolved as Sacred resolves them, plus mongodb:// and
// mongodb+srv:// URIs (database from the path, default "sacred"), and the
// options collection_prefix, priority and overwrite after a '?'. Errors
// never contain a password.
func ParseConfig(value string) (*Config, error) {
	if strings.TrimSpace(value) == "" {
		return nil, errors.New("mongo: empty -m value; " + grammarHelp)
	}
	if isURI(value) {
		return parseURI(value)
	}
	if strings.ContainsAny(value, "\x00\r\n\t ") {
		return nil, fmt.Errorf("mongo: -m value %q contains a space or control character; %s", value, grammarHelp)
	}
	spec, query, _ := strings.Cut(value, "?")
	c := &Config{DB: DefaultDB, Runs: "runs", Metrics: "metrics", Priority: DefaultPriority, Display: value}
	host := "localhost:27017"
	if m := hostOnlyRE().FindStringSubmatch(spec); m != nil {
		if err := checkPort(m[2], value); err != nil {
			return nil, err
		}
		host = m[1] + ":" + m[2]
		c.HostOnly = true
	} else if m := fullRE().FindStringSubmatch(spec); m != nil {
		if m[1] != "" {
			if err := checkPort(m[2], value); err != nil {
				return nil, err
			}
			host = m[1] + ":" + m[2]
		}
		c.DB = m[3]
		if m[4] != "" {
			// Sacred passes it as the deprecated collection=: the runs
			// collection only; metrics stay in "metrics".
			c.Runs = m[4]
		}
		if m[5] != "" {
			id, err := strconv.ParseInt(m[5], 10, 64)
			if err != nil || id <= 0 {
				return nil, fmt.Errorf("mongo: run id to overwrite in %q must be a positive integer", value)
			}
			c.Overwrite = id
		}
		if m[6] != "" {
			p, err := strconv.Atoi(m[6])
			if err != nil {
				return nil, fmt.Errorf("mongo: priority in %q is out of range", value)
			}
			c.Priority = p
		}
	} else {
		return nil, fmt.Errorf("mongo: cannot read -m value %q: %s (names start with a letter or '_' and have at most 64 characters)", value, grammarHelp)
	}
	if query != "" {
		q, err := url.ParseQuery(query)
		if err != nil {
			return nil, fmt.Errorf("mongo: options after '?' in %q: %w", value, err)
		}
		if err := c.applyOptions(q, value, true); err != nil {
			return nil, err
		}
	}
	c.URI = "mongodb://" + host + "/"
	return c, c.finish(value)
}

func checkPort(p, value string) error {
	if n, _ := strconv.Atoi(p); n < 1 || n > 65535 {
		return fmt.Errorf("mongo: port %s in %q is not between 1 and 65535", p, value)
	}
	return nil
}

func isURI(v string) bool {
	l := strings.ToLower(v)
	return strings.HasPrefix(l, "mongodb://") || strings.HasPrefix(l, "mongodb+srv://")
}

// parseURI splits a connection string into what the driver needs and what
// is ours: the database (path) and our own query options.
func parseURI(value string) (*Config, error) {
	display := Redact(value)
	c := &Config{DB: DefaultDB, Runs: "runs", Metrics: "metrics", Priority: DefaultPriority, Display: display}
	scheme, rest, _ := strings.Cut(value, "://")
	scheme = strings.ToLower(scheme)
	rest, query, hasQuery := strings.Cut(rest, "?")
	// The userinfo ends at the last '@' before the path.
	auth, hostPath := "", rest
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		auth, hostPath = rest[:at], rest[at+1:]
	}
	hosts, path, _ := strings.Cut(hostPath, "/")
	if hosts == "" {
		return nil, fmt.Errorf("mongo: no host in %q; write mongodb://HOST[:PORT]/DB", display)
	}
	if auth != "" {
		user, pw, hasPW := strings.Cut(auth, ":")
		c.addSecret(pw)
		if hasPW && pw == "" {
			return nil, fmt.Errorf("mongo: empty password in %q", display)
		}
		if _, err := url.PathUnescape(user); err != nil {
			return nil, fmt.Errorf("mongo: user name in %q is not percent-encoded correctly", display)
		}
		if _, err := url.PathUnescape(pw); err != nil {
			return nil, errors.New("mongo: password in the -m URI is not percent-encoded correctly (encode ':', '/', '?', '#', '[', ']', '@' and '%' as %XX)")
		}
	}
	if path != "" {
		db, err := url.PathUnescape(path)
		if err != nil {
			return nil, fmt.Errorf("mongo: database name in %q is not percent-encoded correctly", display)
		}
		if db == "" || strings.ContainsAny(db, "/\\. \"$\x00") || len(db) > 63 {
			return nil, fmt.Errorf("mongo: database name %q in %q is not valid for MongoDB (no '/', '\\', '.', ' ', '\"', '$'; at most 63 characters)", db, display)
		}
		c.DB = db
	}
	var driverQuery []string
	if hasQuery && query != "" {
		ours := url.Values{}
		for _, kv := range strings.Split(query, "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			switch strings.ToLower(k) {
			case optPrefix, optPriority, optOverwrite:
				uv, err := url.QueryUnescape(v)
				if err != nil {
					return nil, fmt.Errorf("mongo: option %s in %q is not percent-encoded correctly", k, display)
				}
				ours.Set(strings.ToLower(k), uv)
			default:
				if isSecretOption(k) {
					if uv, err := url.QueryUnescape(v); err == nil {
						c.addSecret(uv)
					}
					c.addSecret(v)
				}
				driverQuery = append(driverQuery, kv)
			}
		}
		if err := c.applyOptions(ours, display, false); err != nil {
			return nil, err
		}
	}
	// The database stays out of the driver's URI path, which it would take
	// as the authentication database: authSource says that explicitly.
	c.URI = scheme + "://" + authPrefix(auth) + hosts + "/"
	if len(driverQuery) > 0 {
		c.URI += "?" + strings.Join(driverQuery, "&")
	}
	if path != "" && !hasOption(driverQuery, "authSource") && auth != "" {
		// A URI's path is also MongoDB's default authentication database;
		// keep that meaning.
		c.URI = addQuery(c.URI, "authSource="+url.QueryEscape(c.DB))
	}
	return c, c.finish(display)
}

func authPrefix(auth string) string {
	if auth == "" {
		return ""
	}
	return auth + "@"
}

func hasOption(kvs []string, name string) bool {
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func addQuery(uri, kv string) string {
	if strings.Contains(uri, "?") {
		return uri + "&" + kv
	}
	return uri + "?" + kv
}

// applyOptions applies our own options. strict rejects unknown ones (the
// short forms take no driver options).
func (c *Config) applyOptions(q url.Values, display string, strict bool) error {
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch strings.ToLower(k) {
		case optPrefix:
			if v != "" && !nameRE().MatchString(v) {
				return fmt.Errorf("mongo: collection_prefix %q in %q must start with a letter or '_' and use letters, digits or _-", v, display)
			}
			c.Prefix = v
		case optPriority:
			p, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("mongo: priority %q in %q is not an integer", v, display)
			}
			c.Priority = p
		case optOverwrite:
			id, err := strconv.ParseInt(v, 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("mongo: overwrite %q in %q must be a positive run id", v, display)
			}
			c.Overwrite = id
		default:
			if strict {
				return fmt.Errorf("mongo: unknown option %q in %q; the short forms take only collection_prefix, priority and overwrite (use a mongodb:// URI for driver options)", k, display)
			}
		}
	}
	return nil
}

// finish applies the prefix and checks the names.
func (c *Config) finish(display string) error {
	if c.Prefix != "" {
		// Sacred's collection_prefix: <prefix>_runs and <prefix>_metrics.
		// An explicit runs collection (DB.COLLECTION) keeps its name.
		if c.Runs == "runs" {
			c.Runs = c.Prefix + "_runs"
		}
		c.Metrics = c.Prefix + "_metrics"
	}
	for _, n := range []string{c.Runs, c.Metrics} {
		switch n {
		case "fs.files", "fs.chunks", "_properties", "system.indexes", "search_space", "search_spaces":
			return fmt.Errorf("mongo: collection name %q in %q is reserved; choose another", n, display)
		}
		if strings.HasPrefix(n, "omniboard") {
			return fmt.Errorf("mongo: collection name %q in %q belongs to Omniboard; choose another", n, display)
		}
	}
	return nil
}

func (c *Config) addSecret(s string) {
	if s == "" {
		return
	}
	c.secrets = append(c.secrets, s)
	if u, err := url.PathUnescape(s); err == nil && u != s {
		c.secrets = append(c.secrets, u)
	}
	if u, err := url.QueryUnescape(s); err == nil && u != s {
		c.secrets = append(c.secrets, u)
	}
}

// isSecretOption tells connection-string options whose value is secret.
func isSecretOption(k string) bool {
	l := strings.ToLower(k)
	return strings.Contains(l, "password") || strings.Contains(l, "secret") ||
		strings.Contains(l, "token") || l == "authmechanismproperties"
}

const mask = "xxxxx"

// Redact returns an -m value with the password and secret options masked.
// The user name is kept: it helps to tell accounts apart and is not a
// secret. It is safe on any input, even one ParseConfig rejects.
func Redact(value string) string {
	i := strings.Index(value, "://")
	if i < 0 {
		return value
	}
	head, rest := value[:i+3], value[i+3:]
	rest, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		auth := rest[:at]
		if user, _, hasPW := strings.Cut(auth, ":"); hasPW {
			auth = user + ":" + mask
		}
		rest = auth + rest[at:]
	}
	if !hasQuery {
		return head + rest
	}
	parts := strings.Split(query, "&")
	for j, kv := range parts {
		if k, _, ok := strings.Cut(kv, "="); ok && isSecretOption(k) {
			parts[j] = k + "=" + mask
		}
	}
	return head + rest + "?" + strings.Join(parts, "&")
}

// scrub removes the secrets of c from an error's text, keeping the error
// chain for errors.Is and errors.As.
func (c *Config) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range c.secrets {
		clean = strings.ReplaceAll(clean, s, mask)
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }
