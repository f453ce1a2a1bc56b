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
  function pidusage(pids: number[]): Promise<Record<number, Stat>>;
  export default pidusage;
}
