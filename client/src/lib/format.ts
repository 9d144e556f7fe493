/** A share (0-1) as a whole percentage, as the page shows it and a screen reader reads it. */
export const percent = (share: number): string => `${Math.round(share * 100)} %`;
