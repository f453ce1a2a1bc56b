// pidusage 4 ships no types; only the array form is used.
declare module 'pidusage' {
  interface Stat {
    cpu: number;
    memory: number;
    ppid: number;
    pid: number;
    ctime: number;
    elapsed: number;
    timestamp: number;
  }
  interface Options {
    /** How long the previous sample of a pid is kept for the next CPU %, in ms. */
    maxage?: number;
  }
  function pidusage(pids: number[], options?: Options): Promise<Record<number, Stat>>;
  export default pidusage;
}
