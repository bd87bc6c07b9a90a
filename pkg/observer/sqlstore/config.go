package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Option is the flag name (without dashes) and the key in sacred.yaml and
// SACRED_* variables: Sacred's --sql.
const Option = "sql"

// DefaultPriority is Sacred's SqlObserver priority.
const DefaultPriority = 40

func init() {
	observer.Register(observer.Kind{
		Option: Option,
		Short:  "s",
		Arg:    "URL",
		Title:  "SQL",
		Usage:  "record to an SQL database: sqlite:///runs.db, postgresql://..., mysql://... (Sacred's SqlObserver)",
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

// dialect is one of the SQL databases we speak to.
type dialect int

const (
	dialectSQLite dialect = iota + 1
	dialectPostgres
	dialectMySQL
)

func (d dialect) String() string {
	switch d {
	case dialectSQLite:
		return "sqlite"
	case dialectPostgres:
		return "postgresql"
	case dialectMySQL:
		return "mysql"
	}
	return "unknown"
}

// Config is a parsed SQLAlchemy URL.
type Config struct {
	dialect  dialect
	driver   string // the SQLAlchemy driver part after "+", informative only
	User     string
	Password string
	Host     string // without brackets for IPv6
	Port     int    // 0 when not given
	Database string // database name, or the file path for SQLite (absolute)
	Query    url.Values
	raw      string
}

// Dialect names the database kind: "sqlite", "postgresql" or "mysql".
func (c *Config) Dialect() string { return c.dialect.String() }

// errURL marks every problem with the URL itself, as opposed to the server.
var errURL = errors.New("bad SQL URL")

const urlHelp = "use postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH"

// urlError builds one line naming the problem and the redacted URL.
func urlError(raw, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", errURL, Redact(raw), fmt.Sprintf(format, args...))
}

// dialects maps SQLAlchemy dialect names to ours; the driver after "+" is
// accepted whatever it is, since SQLAlchemy users pick their own.
var dialects = map[string]dialect{
	"sqlite":     dialectSQLite,
	"postgresql": dialectPostgres,
	"postgres":   dialectPostgres,
	"mysql":      dialectMySQL,
	"mariadb":    dialectMySQL,
}

// ParseConfig parses the value of -s, an SQLAlchemy database URL. Relative
// SQLite paths are made absolute against the working directory. It does not
// connect. Errors never contain the password.
func ParseConfig(raw string) (*Config, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: the URL is empty (%s)", errURL, urlHelp)
	}
	if strings.ContainsAny(raw, "\x00\r\n\t") {
		return nil, urlError(raw, "the URL contains control characters")
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, urlError(raw, "missing \"://\" after the dialect name (%s)", urlHelp)
	}
	name, driver, _ := strings.Cut(strings.ToLower(scheme), "+")
	d, ok := dialects[name]
	if !ok {
		return nil, urlError(raw, "unknown dialect %q (%s)", name, urlHelp)
	}
	c := &Config{dialect: d, driver: driver, raw: raw, Query: url.Values{}}
	if d == dialectSQLite {
		return parseSQLite(c, rest)
	}

	// Userinfo ends at the last "@", so an unescaped "@" in a password
	// still works (SQLAlchemy would need %40).
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, pw, hasPW := strings.Cut(rest[:at], ":")
		var err error
		if c.User, err = url.PathUnescape(user); err != nil {
			return nil, urlError(raw, "bad %%-escape in the user name")
		}
		if hasPW {
			if c.Password, err = url.PathUnescape(pw); err != nil {
				// Say nothing about where: that would reveal the password.
				return nil, urlError(raw, "bad %%-escape in the password")
			}
		}
		rest = rest[at+1:]
	}
	hostport := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hostport, rest = rest[:i], rest[i:]
	} else {
		rest = ""
	}
	if err := c.parseHostPort(hostport); err != nil {
		return nil, err
	}
	dbpart, query, _ := strings.Cut(rest, "?")
	dbpart = strings.TrimPrefix(dbpart, "/")
	db, err := url.PathUnescape(dbpart)
	if err != nil {
		return nil, urlError(raw, "bad %%-escape in the database name")
	}
	c.Database = db
	if c.Database == "" {
		return nil, urlError(raw, "no database name after the host")
	}
	if strings.Contains(c.Database, "/") {
		return nil, urlError(raw, "the database name %q contains \"/\"", c.Database)
	}
	if err := c.parseQuery(query); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) parseHostPort(hp string) error {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.Index(hp, "]")
		if end < 0 {
			return urlError(c.raw, "unclosed \"[\" in the IPv6 host")
		}
		host = hp[1:end]
		after := hp[end+1:]
		if after != "" {
			if !strings.HasPrefix(after, ":") {
				return urlError(c.raw, "unexpected %q after the IPv6 host", after)
			}
			port = after[1:]
		}
	} else if i := strings.LastIndex(hp, ":"); i >= 0 {
		host, port = hp[:i], hp[i+1:]
	}
	h, err := url.PathUnescape(host)
	if err != nil {
		return urlError(c.raw, "bad %%-escape in the host name")
	}
	c.Host = h
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return urlError(c.raw, "the port %q is not a number from 1 to 65535", port)
		}
		c.Port = n
	}
	return nil
}

// allowedQuery lists the query options we pass on, per dialect. The driver
// would reject others at connect time with a less helpful message.
var allowedQuery = map[dialect]map[string]bool{
	dialectPostgres: {
		"sslmode": true, "sslrootcert": true, "sslcert": true, "sslkey": true,
		"sslpassword": true, "connect_timeout": true, "application_name": true,
		"host": true, "port": true, "options": true, "target_session_attrs": true,
		"search_path": true, "password": true, "user": true,
	},
	dialectMySQL: {
		"charset": true, "unix_socket": true, "ssl": true, "tls": true, "connect_timeout": true,
	},
	dialectSQLite: {},
}

func (c *Config) parseQuery(q string) error {
	if q == "" {
		return nil
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return urlError(c.raw, "malformed query options")
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !allowedQuery[c.dialect][k] {
			allowed := make([]string, 0)
			for a := range allowedQuery[c.dialect] {
				allowed = append(allowed, a)
			}
			sort.Strings(allowed)
			if len(allowed) == 0 {
				return urlError(c.raw, "unsupported option %q (%s takes no options)", k, c.dialect)
			}
			return urlError(c.raw, "unsupported option %q for %s (supported: %s)", k, c.dialect, strings.Join(allowed, ", "))
		}
	}
	if cs := v.Get("charset"); cs != "" && cs != "utf8mb4" && cs != "utf8" {
		return urlError(c.raw, "charset %q is not supported: records are UTF-8 (use utf8mb4)", cs)
	}
	c.Query = v
	return nil
}

func parseSQLite(c *Config, rest string) (*Config, error) {
	path, query, _ := strings.Cut(rest, "?")
	if err := c.parseQuery(query); err != nil {
		return nil, err
	}
	if path == "" || path == "/" || path == "/:memory:" {
		return nil, urlError(c.raw, "an in-memory SQLite database is lost when the run ends; give a file: sqlite:///relative.db or sqlite:////absolute/path.db")
	}
	if !strings.HasPrefix(path, "/") {
		return nil, urlError(c.raw, "a host is not allowed in an SQLite URL; use three slashes for a relative path (sqlite:///runs.db) or four for an absolute one")
	}
	p, err := url.PathUnescape(path[1:])
	if err != nil {
		return nil, urlError(c.raw, "bad %%-escape in the path")
	}
	if strings.HasSuffix(p, "/") {
		return nil, urlError(c.raw, "the path %q names a directory, not a database file", p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("%w %q: cannot make the path absolute: %w", errURL, c.raw, err)
	}
	c.Database = abs
	return c, nil
}

// Redact returns the URL with its password (and any password option)
// replaced by "***", as SQLAlchemy prints it. It never fails: for a URL it
// cannot parse it masks everything that could be a password.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	out := rest
	// The userinfo ends at the last "@", as in ParseConfig.
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, _, hasPW := strings.Cut(rest[:at], ":")
		if hasPW {
			out = user + ":***" + rest[at:]
		}
	}
	// Password options in the query, whatever their position.
	if base, q, ok := strings.Cut(out, "?"); ok {
		parts := strings.Split(q, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			switch strings.ToLower(k) {
			case "password", "sslpassword", "passwd", "pwd":
				parts[i] = k + "=***"
			}
		}
		out = base + "?" + strings.Join(parts, "&")
	}
	return scheme + "://" + out
}
