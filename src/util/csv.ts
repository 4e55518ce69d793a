import { DnoError } from "./errors.js";
import { readTextFile } from "./files.js";

/** A CSV table: the header's column names and the data rows (each with its 1-based line in the file). */
export interface CsvTable {
  columns: string[];
  rows: { line: number; cells: string[] }[];
}

/**
 * Reads a CSV file as pandas writes it: comma-separated, fields optionally in double quotes (a doubled
 * quote inside is a quote, and a quoted field may span lines), the first record the header. Blank lines
 * are skipped; a row with a different number of fields than the header is an error naming its line.
 */
export function readCsv(file: string): CsvTable {
  const text = readTextFile(file);
  const records: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let field = "";
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let fieldStarted = false;
  const endRecord = () => {
    if (fieldStarted || cells.length > 0) records.push({ line: recordLine, cells: [...cells, field] });
    cells = [];
    field = "";
    fieldStarted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === "\n") line++;
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
      fieldStarted = true;
    } else if (c === ",") {
      cells.push(field);
      field = "";
      fieldStarted = true;
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      if (!fieldStarted) recordLine = line;
      field += c;
      fieldStarted = true;
    }
  }
  if (quoted) throw new DnoError(`${file}:${recordLine}: a quoted field is not closed`);
  endRecord();
  const [header, ...rows] = records;
  if (!header) throw new DnoError(`${file}: empty CSV file`);
  for (const r of rows)
    if (r.cells.length !== header.cells.length)
      throw new DnoError(
        `${file}:${r.line}: ${r.cells.length} fields, the header has ${header.cells.length}`,
      );
  return { columns: header.cells, rows };
}

/** The index of a required column; the error names the file and the columns it has. */
export function csvColumn(table: CsvTable, file: string, name: string): number {
  const j = table.columns.indexOf(name);
  if (j < 0) throw new DnoError(`${file}: no "${name}" column (columns: ${table.columns.join(", ")})`);
  return j;
}
