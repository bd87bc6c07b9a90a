package collect

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Reading commits and trees from the object database: loose objects and
// packs (index version 2, with OFS_DELTA and REF_DELTA chains), in the
// repository's objects directory and its alternates. Blobs are never
// read: only HEAD's commit and the trees under it are needed to compare
// HEAD with the index. An object that is nowhere (a partial clone) is an
// error.

type objectType int

const (
	objCommit objectType = 1
	objTree   objectType = 2
	objBlob   objectType = 3
	objTag    objectType = 4
	objOfs    objectType = 6
	objRef    objectType = 7
)

var objectTypeNames = [...]string{objCommit: "commit", objTree: "tree", objBlob: "blob", objTag: "tag"}

var errObjectMissing = errors.New("object not found")

type objectStore struct {
	dirs     []string // objects directories: the repository's, then alternates
	hashSize int
	packs    []*packFile
	loaded   bool
	zr       io.ReadCloser // reused inflater (zlib.Resetter)
}

func newObjectStore(r *gitRepo) *objectStore {
	s := &objectStore{hashSize: r.hashSize}
	seen := map[string]bool{}
	var add func(dir string, depth int)
	add = func(dir string, depth int) {
		dir = filepath.Clean(dir)
		if seen[dir] || depth > 5 {
			return
		}
		seen[dir] = true
		s.dirs = append(s.dirs, dir)
		data, err := os.ReadFile(filepath.Join(dir, "info", "alternates"))
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(data), "\n") {
			l = strings.TrimSpace(l)
			if l == "" || l[0] == '#' {
				continue
			}
			if !filepath.IsAbs(l) {
				l = filepath.Join(dir, l)
			}
			add(l, depth+1)
		}
	}
	add(filepath.Join(r.commonDir, "objects"), 0)
	return s
}

func (s *objectStore) close() {
	for _, p := range s.packs {
		p.close()
	}
}

// read returns an object's type and content.
func (s *objectStore) read(id string) (objectType, []byte, error) {
	if len(id) != s.hashSize {
		return 0, nil, fmt.Errorf("object id of %d bytes", len(id))
	}
	if !s.loaded {
		s.loaded = true
		if err := s.loadPacks(); err != nil {
			return 0, nil, err
		}
	}
	for _, p := range s.packs {
		off, ok, err := p.find(id)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			return p.read(s, off, 0)
		}
	}
	hx := hex.EncodeToString([]byte(id))
	for _, d := range s.dirs {
		data, err := os.ReadFile(filepath.Join(d, hx[:2], hx[2:]))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		return s.parseLoose(hx, data)
	}
	return 0, nil, fmt.Errorf("%w: %s", errObjectMissing, hx)
}

// readAs reads an object that must be of type want.
func (s *objectStore) readAs(id string, want objectType) ([]byte, error) {
	t, data, err := s.read(id)
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, fmt.Errorf("object %x is a %s, not a %s", id, objectTypeNames[t], objectTypeNames[want])
	}
	return data, nil
}

func (s *objectStore) inflate(r io.Reader, size int64) ([]byte, error) {
	var err error
	if s.zr == nil {
		s.zr, err = zlib.NewReader(r)
	} else {
		err = s.zr.(zlib.Resetter).Reset(r, nil)
	}
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		out := make([]byte, size)
		if _, err := io.ReadFull(s.zr, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	return io.ReadAll(s.zr)
}

func (s *objectStore) parseLoose(hx string, data []byte) (objectType, []byte, error) {
	raw, err := s.inflate(bytes.NewReader(data), -1)
	if err != nil {
		return 0, nil, fmt.Errorf("object %s: %w", hx, err)
	}
	hdr, body, ok := bytes.Cut(raw, []byte{0})
	typ, size, ok2 := strings.Cut(string(hdr), " ")
	if !ok || !ok2 || size != fmt.Sprint(len(body)) {
		return 0, nil, fmt.Errorf("object %s: bad header", hx)
	}
	for t, n := range objectTypeNames {
		if n != "" && n == typ {
			return objectType(t), body, nil
		}
	}
	return 0, nil, fmt.Errorf("object %s: unknown type %q", hx, typ)
}

func (s *objectStore) loadPacks() error {
	for _, d := range s.dirs {
		names, err := filepath.Glob(filepath.Join(d, "pack", "pack-*.idx"))
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, idx := range names {
			pack := strings.TrimSuffix(idx, ".idx") + ".pack"
			if _, err := os.Stat(pack); err != nil {
				continue // being written or removed
			}
			s.packs = append(s.packs, &packFile{idxPath: idx, packPath: pack, hashSize: s.hashSize})
		}
	}
	return nil
}

// packFile is one pack and its index, opened on first use. Lookups read
// the index with pread (binary search within the fanout bucket), so a
// large index is never read whole.
type packFile struct {
	idxPath, packPath string
	hashSize          int
	idx, pack         *os.File
	n                 uint32
	fanout            [256]uint32
	bases             map[int64]cachedObject // delta bases already inflated
	cached            int
	err               error
}

type cachedObject struct {
	typ  objectType
	data []byte
}

const maxDeltaDepth = 100       // git's default limit is 50
const maxCachedBases = 64 << 20 // bytes of delta bases kept while walking

func (p *packFile) close() {
	if p.idx != nil {
		p.idx.Close()
	}
	if p.pack != nil {
		p.pack.Close()
	}
}

func (p *packFile) open() error {
	if p.idx != nil || p.err != nil {
		return p.err
	}
	p.err = func() error {
		f, err := os.Open(p.idxPath)
		if err != nil {
			return err
		}
		p.idx = f
		var hdr [8 + 256*4]byte
		if _, err := f.ReadAt(hdr[:], 0); err != nil {
			return fmt.Errorf("read %s: %w", p.idxPath, err)
		}
		if string(hdr[:4]) != "\xfftOc" || binary.BigEndian.Uint32(hdr[4:]) != 2 {
			return fmt.Errorf("%w: pack index %s is not version 2", errGitUnsupported, p.idxPath)
		}
		for i := range p.fanout {
			p.fanout[i] = binary.BigEndian.Uint32(hdr[8+4*i:])
		}
		p.n = p.fanout[255]
		if p.pack, err = os.Open(p.packPath); err != nil {
			return err
		}
		return nil
	}()
	return p.err
}

// find returns the offset of id in the pack.
func (p *packFile) find(id string) (int64, bool, error) {
	if err := p.open(); err != nil {
		return 0, false, err
	}
	first := id[0]
	lo, hi := uint32(0), p.fanout[first]
	if first > 0 {
		lo = p.fanout[first-1]
	}
	const namesAt = 8 + 256*4
	hs := uint32(p.hashSize)
	buf := make([]byte, hs)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := p.idx.ReadAt(buf, int64(namesAt+mid*hs)); err != nil {
			return 0, false, fmt.Errorf("read %s: %w", p.idxPath, err)
		}
		switch c := strings.Compare(string(buf), id); {
		case c == 0:
			return p.offset(mid)
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false, nil
}

func (p *packFile) offset(i uint32) (int64, bool, error) {
	offsets := int64(8+256*4) + int64(p.n)*int64(p.hashSize+4)
	var b [8]byte
	if _, err := p.idx.ReadAt(b[:4], offsets+4*int64(i)); err != nil {
		return 0, false, fmt.Errorf("read %s: %w", p.idxPath, err)
	}
	off := binary.BigEndian.Uint32(b[:4])
	if off&0x80000000 == 0 {
		return int64(off), true, nil
	}
	large := offsets + 4*int64(p.n) + 8*int64(off&0x7fffffff)
	if _, err := p.idx.ReadAt(b[:], large); err != nil {
		return 0, false, fmt.Errorf("read %s: %w", p.idxPath, err)
	}
	return int64(binary.BigEndian.Uint64(b[:])), true, nil
}

// read returns the object at off, applying its deltas.
func (p *packFile) read(s *objectStore, off int64, depth int) (objectType, []byte, error) {
	if c, ok := p.bases[off]; ok {
		return c.typ, c.data, nil
	}
	if depth > maxDeltaDepth {
		return 0, nil, fmt.Errorf("%s: delta chain longer than %d", p.packPath, maxDeltaDepth)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(p.pack, off, 1<<62), 4096)
	c, err := r.ReadByte()
	if err != nil {
		return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
	}
	typ := objectType(c >> 4 & 7)
	size := int64(c & 0x0f)
	for shift := 4; c&0x80 != 0; shift += 7 {
		if c, err = r.ReadByte(); err != nil || shift > 56 {
			return 0, nil, fmt.Errorf("read %s at %d: bad object header", p.packPath, off)
		}
		size |= int64(c&0x7f) << shift
	}
	var baseT objectType
	var base []byte
	switch typ {
	case objCommit, objTree, objBlob, objTag:
		data, err := s.inflate(r, size)
		if err != nil {
			return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
		}
		return typ, data, nil
	case objOfs:
		var b [10]byte
		n := 0
		for {
			if n == len(b) {
				return 0, nil, fmt.Errorf("read %s at %d: bad delta offset", p.packPath, off)
			}
			if b[n], err = r.ReadByte(); err != nil {
				return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
			}
			n++
			if b[n-1]&0x80 == 0 {
				break
			}
		}
		rel, w := indexVarint(b[:n])
		if w == 0 || rel == 0 || int64(rel) > off {
			return 0, nil, fmt.Errorf("read %s at %d: bad delta offset", p.packPath, off)
		}
		baseOff := off - int64(rel)
		if baseT, base, err = p.read(s, baseOff, depth+1); err != nil {
			return 0, nil, err
		}
		p.keep(baseOff, baseT, base)
	case objRef:
		id := make([]byte, p.hashSize)
		if _, err := io.ReadFull(r, id); err != nil {
			return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
		}
		if baseT, base, err = s.read(string(id)); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, fmt.Errorf("read %s at %d: object type %d", p.packPath, off, typ)
	}
	delta, err := s.inflate(r, size)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
	}
	data, err := applyDelta(base, delta)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s at %d: %w", p.packPath, off, err)
	}
	return baseT, data, nil
}

// keep remembers a delta base: the trees of one walk share their bases.
func (p *packFile) keep(off int64, t objectType, data []byte) {
	if p.bases == nil || p.cached+len(data) > maxCachedBases {
		p.bases, p.cached = map[int64]cachedObject{}, 0
	}
	if _, ok := p.bases[off]; !ok {
		p.bases[off] = cachedObject{t, data}
		p.cached += len(data)
	}
}

var errBadDelta = errors.New("bad delta")

// applyDelta rebuilds an object from its base and a delta: the sizes of
// both, then copy (offset, size from the base) and insert instructions.
func applyDelta(base, delta []byte) ([]byte, error) {
	srcSize, n := binary.Uvarint(delta)
	if n <= 0 || srcSize != uint64(len(base)) {
		return nil, errBadDelta
	}
	delta = delta[n:]
	dstSize, n := binary.Uvarint(delta)
	if n <= 0 || dstSize > 1<<40 {
		return nil, errBadDelta
	}
	delta = delta[n:]
	out := make([]byte, 0, dstSize)
	for len(delta) > 0 {
		op := delta[0]
		delta = delta[1:]
		if op&0x80 == 0 {
			if op == 0 || int(op) > len(delta) {
				return nil, errBadDelta
			}
			out = append(out, delta[:op]...)
			delta = delta[op:]
			continue
		}
		var off, size uint64
		for i := range 7 {
			if op&(1<<i) == 0 {
				continue
			}
			if len(delta) == 0 {
				return nil, errBadDelta
			}
			if i < 4 {
				off |= uint64(delta[0]) << (8 * i)
			} else {
				size |= uint64(delta[0]) << (8 * (i - 4))
			}
			delta = delta[1:]
		}
		if size == 0 {
			size = 0x10000
		}
		if off+size > uint64(len(base)) {
			return nil, errBadDelta
		}
		out = append(out, base[off:off+size]...)
	}
	if uint64(len(out)) != dstSize {
		return nil, errBadDelta
	}
	return out, nil
}

// commitTree returns the tree id of a commit.
func (s *objectStore) commitTree(commit string) (string, error) {
	data, err := s.readAs(commit, objCommit)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	hx, ok := bytes.CutPrefix(line, []byte("tree "))
	if !ok {
		return "", fmt.Errorf("commit %x: no tree", commit)
	}
	id, err := hex.DecodeString(string(hx))
	if err != nil || len(id) != s.hashSize {
		return "", fmt.Errorf("commit %x: bad tree id", commit)
	}
	return string(id), nil
}

type treeEntry struct {
	name string
	mode uint32
	id   string
}

// parseTree reads a tree's "<octal mode> <name>\0<id>" entries.
func parseTree(data []byte, hashSize int) ([]treeEntry, error) {
	var out []treeEntry
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp <= 0 {
			return nil, errors.New("bad tree entry")
		}
		var mode uint32
		for _, c := range data[:sp] {
			if c < '0' || c > '7' {
				return nil, errors.New("bad tree entry mode")
			}
			mode = mode<<3 | uint32(c-'0')
		}
		data = data[sp+1:]
		nul := bytes.IndexByte(data, 0)
		if nul <= 0 || nul+1+hashSize > len(data) {
			return nil, errors.New("bad tree entry")
		}
		out = append(out, treeEntry{name: string(data[:nul]), mode: mode, id: string(data[nul+1 : nul+1+hashSize])})
		data = data[nul+1+hashSize:]
	}
	return out, nil
}
