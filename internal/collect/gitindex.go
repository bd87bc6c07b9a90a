package collect

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The index (.git/index), versions 2 to 4 (gitformat-index(5)): the
// entries and the cache-tree (TREE) extension. An extension git marks as
// required (its name not upper case: the split index "link", the sparse
// index "sdir") is errGitUnsupported.

// Modes as git writes them in trees and the index.
const (
	modeRegular    = 0o100644
	modeExecutable = 0o100755
	modeSymlink    = 0o120000
	modeGitlink    = 0o160000
	modeTree       = 0o040000
	modeDeprecated = 0o100664 // an old group-writable file: read as modeRegular
)

type indexEntry struct {
	name         string
	id           string // raw object id
	mode         uint32
	size         uint32
	mtimeSec     uint32
	mtimeNsec    uint32
	ctimeSec     uint32
	ctimeNsec    uint32
	stage        int
	skipWorktree bool
	intentToAdd  bool
}

// cacheTree is one valid directory of the TREE extension: the tree id of
// the first count index entries under its path.
type cacheTree struct {
	count int
	id    string
}

type gitIndex struct {
	entries []indexEntry
	trees   map[string]cacheTree // "" is the root; "a/b" a directory
	mtime   time.Time            // when the index was written
}

// readGitIndex reads the index of r; a repository without one (no file
// ever staged) has an empty index.
func readGitIndex(r *gitRepo) (*gitIndex, error) {
	p := filepath.Join(r.gitDir, "index")
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &gitIndex{}, nil
	}
	if err != nil {
		return nil, err
	}
	idx, err := parseGitIndex(data, r.hashSize)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(p); err == nil {
		idx.mtime = fi.ModTime()
	}
	return idx, nil
}

var errBadIndex = errors.New("index is corrupt")

func parseGitIndex(data []byte, hashSize int) (*gitIndex, error) {
	if len(data) < 12+hashSize || string(data[:4]) != "DIRC" {
		return nil, fmt.Errorf("%w: no index header", errBadIndex)
	}
	// The trailing checksum; all zeros when written with index.skipHash.
	body, sum := data[:len(data)-hashSize], data[len(data)-hashSize:]
	if !allZero(sum) {
		var got []byte
		if hashSize == 32 {
			s := sha256.Sum256(body)
			got = s[:]
		} else {
			s := sha1.Sum(body)
			got = s[:]
		}
		if !bytes.Equal(got, sum) {
			return nil, fmt.Errorf("%w: checksum mismatch", errBadIndex)
		}
	}
	version := binary.BigEndian.Uint32(body[4:])
	if version < 2 || version > 4 {
		return nil, fmt.Errorf("%w: index version %d", errGitUnsupported, version)
	}
	n := binary.BigEndian.Uint32(body[8:])
	idx := &gitIndex{entries: make([]indexEntry, 0, min(n, uint32(len(body)/62)))}
	pos := 12
	prev := ""
	for range n {
		var e indexEntry
		const fixed = 40 // ctime, mtime, dev, ino, mode, uid, gid, size
		if pos+fixed+hashSize+2 > len(body) {
			return nil, fmt.Errorf("%w: truncated entry", errBadIndex)
		}
		b := body[pos:]
		e.ctimeSec = binary.BigEndian.Uint32(b[0:])
		e.ctimeNsec = binary.BigEndian.Uint32(b[4:])
		e.mtimeSec = binary.BigEndian.Uint32(b[8:])
		e.mtimeNsec = binary.BigEndian.Uint32(b[12:])
		e.mode = binary.BigEndian.Uint32(b[24:])
		e.size = binary.BigEndian.Uint32(b[36:])
		e.id = string(b[fixed : fixed+hashSize])
		flags := binary.BigEndian.Uint16(b[fixed+hashSize:])
		e.stage = int(flags>>12) & 3
		hdr := fixed + hashSize + 2
		if flags&0x4000 != 0 { // extended flags (version 3+)
			if version < 3 || pos+hdr+2 > len(body) {
				return nil, fmt.Errorf("%w: bad extended flags", errBadIndex)
			}
			ext := binary.BigEndian.Uint16(b[hdr:])
			e.skipWorktree = ext&0x4000 != 0
			e.intentToAdd = ext&0x2000 != 0
			hdr += 2
		}
		pos += hdr
		if version == 4 {
			// The name is the previous one less its last strip bytes,
			// plus a NUL-terminated suffix; no padding.
			strip, w := indexVarint(body[pos:])
			if w == 0 || strip > uint64(len(prev)) {
				return nil, fmt.Errorf("%w: bad path prefix", errBadIndex)
			}
			pos += w
			end := bytes.IndexByte(body[pos:], 0)
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated path", errBadIndex)
			}
			e.name = prev[:len(prev)-int(strip)] + string(body[pos:pos+end])
			pos += end + 1
		} else {
			end := bytes.IndexByte(body[pos:], 0)
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated path", errBadIndex)
			}
			e.name = string(body[pos : pos+end])
			// Entries are padded with 1 to 8 NULs to a multiple of 8.
			entryLen := hdr + end
			pos += end + (8 - entryLen%8)
		}
		if pos > len(body) {
			return nil, fmt.Errorf("%w: truncated entry", errBadIndex)
		}
		prev = e.name
		idx.entries = append(idx.entries, e)
	}
	for pos+8 <= len(body) {
		sig := string(body[pos : pos+4])
		size := int(binary.BigEndian.Uint32(body[pos+4:]))
		pos += 8
		if size < 0 || pos+size > len(body) {
			return nil, fmt.Errorf("%w: truncated extension %q", errBadIndex, sig)
		}
		ext := body[pos : pos+size]
		pos += size
		switch {
		case sig == "TREE":
			trees, err := parseCacheTree(ext, hashSize)
			if err != nil {
				return nil, err
			}
			idx.trees = trees
		case sig[0] < 'A' || sig[0] > 'Z':
			// Required to understand the index (a split index's link,
			// a sparse index's directory entries).
			return nil, fmt.Errorf("%w: index extension %q", errGitUnsupported, sig)
		}
	}
	if pos != len(body) {
		return nil, fmt.Errorf("%w: trailing bytes", errBadIndex)
	}
	return idx, nil
}

// indexVarint decodes the offset encoding of index version 4 (and of
// OFS_DELTA in packs): each continuation adds one before shifting, so
// every number has a single encoding.
func indexVarint(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		if i > 0 {
			v++
		}
		if i == 9 {
			return 0, 0
		}
		v = v<<7 | uint64(c&0x7f)
		if c&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

// parseCacheTree reads the TREE extension, a pre-order list of
// "<name>\0<count> <subtrees>\n<id>" (no id when count is -1: invalid).
func parseCacheTree(b []byte, hashSize int) (map[string]cacheTree, error) {
	trees := map[string]cacheTree{}
	var walk func(prefix string) error
	walk = func(prefix string) error {
		nul := bytes.IndexByte(b, 0)
		nl := bytes.IndexByte(b, '\n')
		if nul < 0 || nl < nul {
			return fmt.Errorf("%w: bad cache tree", errBadIndex)
		}
		name := string(b[:nul])
		countS, subS, ok := bytes.Cut(b[nul+1:nl], []byte(" "))
		count, err1 := strconv.Atoi(string(countS))
		subs, err2 := strconv.Atoi(string(subS))
		if !ok || err1 != nil || err2 != nil || subs < 0 {
			return fmt.Errorf("%w: bad cache tree", errBadIndex)
		}
		b = b[nl+1:]
		p := name
		if prefix != "" {
			p = prefix + "/" + name
		}
		if count >= 0 {
			if len(b) < hashSize {
				return fmt.Errorf("%w: bad cache tree", errBadIndex)
			}
			trees[p] = cacheTree{count: count, id: string(b[:hashSize])}
			b = b[hashSize:]
		}
		for range subs {
			if err := walk(p); err != nil {
				return err
			}
		}
		return nil
	}
	if len(b) == 0 {
		return trees, nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return trees, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
