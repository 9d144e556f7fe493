import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import { SignIn } from "./SignIn";

const signInWithPassword = vi.fn();
vi.mock("../lib/auth", async (original) => ({
  ...(await original<typeof import("../lib/auth")>()),
  signInWithPassword: (...args: unknown[]) => signInWithPassword(...args),
}));

describe("SignIn", () => {
  it("signs in with the typed email and password", async () => {
    signInWithPassword.mockResolvedValueOnce(undefined);
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await userEvent.type(screen.getByLabelText("Email"), "a@example.com");
    await userEvent.type(screen.getByLabelText("Password"), "secret-1");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(signInWithPassword).toHaveBeenCalledWith("a@example.com", "secret-1");
    expect(onSignedIn).toHaveBeenCalled();
  });

  it("shows why sign-in failed", async () => {
    const { SignInError } = await import("../lib/auth");
    signInWithPassword.mockRejectedValueOnce(new SignInError("Wrong email or password."));
    const onSignedIn = vi.fn();
    render(<SignIn onSignedIn={onSignedIn} />);
    await userEvent.type(screen.getByLabelText("Email"), "a@example.com");
    await userEvent.type(screen.getByLabelText("Password"), "nope");
    await userEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Wrong email or password.");
    expect(onSignedIn).not.toHaveBeenCalled();
  });
});
