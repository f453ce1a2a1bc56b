import { TsmError } from '../errors.js';

export const SIGNAL_COMMANDS = ['stop', 'quit', 'reopen', 'reload', 'upgrade', 'status'] as const;
export type SignalCommand = (typeof SIGNAL_COMMANDS)[number];

export interface CliOptions {
  configFile: string | null;
  prefix: string | null;
  globals: string | null;
  test: boolean;
  dump: boolean;
  signal: SignalCommand | null;
  json: boolean;
  version: 0 | 1 | 2;
  help: boolean;
}

export const usage = `Usage: tsmaster [-?hvVtTq] [-s signal] [-p prefix] [-c filename] [-g directives]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and build information and exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -s signal     : send signal to a master process: stop, quit, reopen, reload, upgrade, status
  --json        : with -s status, print JSON
  -p prefix     : set prefix path (default: the current directory)
  -c filename   : set configuration file (default: tsmaster.conf in the prefix)
  -g directives : set global directives out of configuration file
`;

function usageError(message: string): TsmError {
  return new TsmError('TSM_ERR_USAGE', message);
}

/** nginx's option syntax: `-c file` or `-cfile`; flags may be grouped (`-tq`). */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = { configFile: null, prefix: null, globals: null, test: false, dump: false, signal: null, json: false, version: 0, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') {
      o.json = true;
      continue;
    }
    if (!arg.startsWith('-') || arg.length < 2 || arg.startsWith('--')) throw usageError(`invalid option: "${arg}"`);
    for (let j = 1; j < arg.length; j++) {
      const flag = arg[j]!;
      const takeValue = (what: string): string => {
        const rest = arg.slice(j + 1);
        j = arg.length;
        if (rest) return rest;
        const next = argv[++i];
        if (next === undefined) throw usageError(`option "-${flag}" requires ${what}`);
        return next;
      };
      switch (flag) {
        case '?':
        case 'h':
          o.help = true;
          break;
        case 'v':
          o.version = Math.max(o.version, 1) as 1 | 2;
          break;
        case 'V':
          o.version = 2;
          break;
        case 't':
          o.test = true;
          break;
        case 'T':
          o.test = o.dump = true;
          break;
        case 'q':
          break;
        case 'c':
          o.configFile = takeValue('file name');
          break;
        case 'p':
          o.prefix = takeValue('directory name');
          break;
        case 'g':
          o.globals = takeValue('global directives');
          break;
        case 's': {
          const name = takeValue('parameter');
          if (!(SIGNAL_COMMANDS as readonly string[]).includes(name)) throw usageError(`invalid option: "-s ${name}"`);
          o.signal = name as SignalCommand;
          break;
        }
        default:
          throw usageError(`invalid option: "${arg.slice(j)}"`);
      }
    }
  }
  if (o.json && o.signal !== 'status') throw usageError('option "--json" goes with "-s status"');
  return o;
}
