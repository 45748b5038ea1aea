import { WeftError } from '@weft/common';

export class LabError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB';
  constructor(message: string, options?: { cause?: unknown }) {
    super(LabError.code, message, options);
  }
}
