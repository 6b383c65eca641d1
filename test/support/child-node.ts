import { spawn, type ChildProcess } from 'node:child_process'

/**
 * Another backend node: runs `script` with `args` in a child Node process and resolves with the
 * child and the JSON object its first stdout line holds (what the node says it wrote). Rejects
 * when the child exits first, with what it wrote to stderr.
 */
export function startNode<T extends object>(
  script: string,
  args: string[],
  children: ChildProcess[],
): Promise<{ child: ChildProcess } & T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      if (out.includes('\n')) resolve({ child, ...(JSON.parse(out.split('\n')[0]!) as T) })
    })
    child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()))
    child.once('exit', (code) => reject(new Error(`${script} exited with ${String(code)}: ${err}`)))
  })
}

/** Kills `child` with SIGKILL (no chance to finish anything) and waits until it is gone. */
export async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await gone
}
