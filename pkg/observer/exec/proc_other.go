//go:build !unix

package exec

import osexec "os/exec"

// shellCommand runs cmdline with cmd.exe.
func shellCommand(cmdline string) *osexec.Cmd {
	return osexec.Command("cmd", "/C", cmdline)
}

func setProcessGroup(*osexec.Cmd) {}

func killProcessGroup(cmd *osexec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
