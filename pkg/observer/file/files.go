package file

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// Resource copies the file to BASEDIR/_resources (once per content) and
// records [path, store path] in run.json.
func (o *Observer) Resource(_ context.Context, ev *observer.ResourceEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("resource"); err != nil {
		return err
	}
	name, err := storeShared(ev.Path, filepath.Join(o.cfg.Abs, layout.ResourcesDir), ev.MD5)
	if err != nil {
		o.lost.add(&o.lost.resources, ev.Path)
		return o.lost.note(fmt.Errorf("file storage: run %s: resource %s not stored: %w", o.id, ev.Path, err))
	}
	// Sacred records the store path built from BASEDIR as given, so a
	// relative BASEDIR gives a path relative to the working directory.
	prev := o.run["resources"]
	o.run.AddResource(ev.Path, layout.JoinPath(o.cfg.BaseDir, layout.ResourcesDir, name))
	if err := o.writeRun(false); err != nil {
		// Not recorded: a repeat of the call must not list it twice.
		o.run["resources"] = prev
		o.lost.add(&o.lost.resources, ev.Path)
		return o.lost.note(err)
	}
	o.lost.remove(&o.lost.resources, ev.Path)
	return nil
}

// Artifact copies the file into the run directory under its name and
// records the name in run.json. The copy has the permissions of the file
// the child named, at most 0644: a private key stays private.
func (o *Observer) Artifact(_ context.Context, ev *observer.ArtifactEvent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.ready("artifact"); err != nil {
		return err
	}
	dst, err := artifactPath(o.runDir, ev.Name)
	if err != nil {
		return fmt.Errorf("file storage: run %s: %w", o.id, err)
	}
	if err := o.storeArtifact(ev, dst); err != nil {
		o.lost.add(&o.lost.artifacts, ev.Name)
		return o.lost.note(fmt.Errorf("file storage: run %s: artifact %q not stored: %w", o.id, ev.Name, err))
	}
	prev := o.run["artifacts"]
	o.run.AddArtifact(ev.Name)
	if err := o.writeRun(false); err != nil {
		o.run["artifacts"] = prev
		o.lost.add(&o.lost.artifacts, ev.Name)
		return o.lost.note(err)
	}
	o.lost.remove(&o.lost.artifacts, ev.Name)
	return nil
}

func (o *Observer) storeArtifact(ev *observer.ArtifactEvent, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	perm, err := artifactPerm(ev)
	if err != nil {
		return err
	}
	return copyFileAtomic(ev.Path, dst, perm)
}

// artifactPerm is the mode of an artifact's stored copy. ev.Path is the
// runner's private copy, whose mode says nothing about the original's, so
// the original is asked first (symlinks followed); when it is gone, the
// copy's own mode is used, which never widens it either.
func artifactPerm(ev *observer.ArtifactEvent) (fs.FileMode, error) {
	if ev.OrigPath != "" {
		if fi, err := os.Stat(ev.OrigPath); err == nil && fi.Mode().IsRegular() {
			return storedPerm(fi.Mode()), nil
		}
	}
	fi, err := os.Stat(ev.Path)
	if err != nil {
		return 0, err
	}
	return storedPerm(fi.Mode()), nil
}
