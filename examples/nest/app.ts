// NestJS under tsmaster: export the application, not listening; tsmaster calls init(),
// serves getHttpServer(), and close() once the drain is over (so the shutdown hooks run).
// Compile with tsc (experimentalDecorators, emitDecoratorMetadata) and point `app` at the output.
import 'reflect-metadata';
import { Controller, Get, Module, type OnApplicationShutdown } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

@Controller()
class HelloController {
  @Get()
  hello(): string {
    return `nest ${process.pid}\n`;
  }
}

@Module({ controllers: [HelloController] })
class AppModule implements OnApplicationShutdown {
  onApplicationShutdown(): void {
    console.log(`nest: onApplicationShutdown ran in ${process.pid}`);
  }
}

export default await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
